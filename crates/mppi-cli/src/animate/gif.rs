//! A small GIF89a writer for the animation: one global palette of the 256 colours most
//! frequent in a few sample frames (plots use few colours; the rest, antialiasing shades,
//! map to their nearest palette entry), looping, LZW-compressed frames.
//!
//! plotters' own GIF backend quantizes every frame with NeuQuant, which took ~40 ms per
//! 480×480 frame (seconds per animation); this takes a few.

use std::io::Write;

/// Largest LZW code (12 bits).
const MAX_CODE: u32 = 4096;
/// Colours in the palette.
const COLOURS: usize = 256;

/// A palette and the mapping of every colour seen so far onto it.
pub(super) struct Palette {
    colours: Vec<[u8; 3]>,
    /// `index + 1` of the palette entry of each 24-bit colour, 0 if not yet mapped.
    lookup: Vec<u16>,
}

impl Palette {
    /// The (at most) 256 colours most frequent in `frames` (RGB, 3 bytes per pixel).
    pub fn from_frames(frames: &[&[u8]]) -> Self {
        let mut counts: std::collections::HashMap<[u8; 3], usize> = Default::default();
        for frame in frames {
            for px in frame.chunks_exact(3) {
                *counts.entry([px[0], px[1], px[2]]).or_default() += 1;
            }
        }
        let mut by_count: Vec<([u8; 3], usize)> = counts.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut colours: Vec<[u8; 3]> = by_count.into_iter().take(COLOURS).map(|c| c.0).collect();
        if colours.is_empty() {
            colours.push([255, 255, 255]);
        }
        Palette {
            colours,
            lookup: vec![0; 1 << 24],
        }
    }

    /// The palette index of `rgb`: its own entry, or the nearest one.
    fn index(&mut self, rgb: [u8; 3]) -> u8 {
        let key = (usize::from(rgb[0]) << 16) | (usize::from(rgb[1]) << 8) | usize::from(rgb[2]);
        let cached = self.lookup[key];
        if cached > 0 {
            return (cached - 1) as u8;
        }
        let dist = |c: &[u8; 3]| -> i32 {
            let d = |i: usize| i32::from(c[i]) - i32::from(rgb[i]);
            // weighted like the eye: green most, blue least
            3 * d(0) * d(0) + 4 * d(1) * d(1) + 2 * d(2) * d(2)
        };
        let best = (0..self.colours.len())
            .min_by_key(|&i| dist(&self.colours[i]))
            .unwrap_or(0);
        self.lookup[key] = best as u16 + 1;
        best as u8
    }

    /// The palette's indices of the pixels of an RGB frame.
    pub fn indices(&mut self, frame: &[u8]) -> Vec<u8> {
        frame
            .chunks_exact(3)
            .map(|p| self.index([p[0], p[1], p[2]]))
            .collect()
    }
}

/// Writes a looping GIF89a frame by frame.
pub(super) struct GifWriter<W: Write> {
    out: W,
    size: (u16, u16),
    /// Centiseconds per frame.
    delay: u16,
    lzw: Lzw,
    /// The previous frame: a frame is stored as the rectangle where it differs from it.
    previous: Vec<u8>,
}

impl<W: Write> GifWriter<W> {
    /// Write the header, the palette and the loop extension.
    pub fn new(
        mut out: W,
        size: (u16, u16),
        delay_ms: u32,
        palette: &Palette,
    ) -> std::io::Result<Self> {
        out.write_all(b"GIF89a")?;
        out.write_all(&size.0.to_le_bytes())?;
        out.write_all(&size.1.to_le_bytes())?;
        // global colour table of 256 entries, 8 bits per primary
        out.write_all(&[0xF7, 0, 0])?;
        let mut table = [0u8; 3 * COLOURS];
        for (i, c) in palette.colours.iter().enumerate() {
            table[3 * i..3 * i + 3].copy_from_slice(c);
        }
        out.write_all(&table)?;
        // loop forever
        out.write_all(&[0x21, 0xFF, 0x0B])?;
        out.write_all(b"NETSCAPE2.0")?;
        out.write_all(&[0x03, 0x01, 0x00, 0x00, 0x00])?;
        let delay = u16::try_from(delay_ms.div_ceil(10)).unwrap_or(u16::MAX);
        Ok(GifWriter {
            out,
            size,
            delay,
            lzw: Lzw::new(),
            previous: vec![],
        })
    }

    /// Append a frame of palette indices (`width · height` of them, row by row).
    pub fn frame(&mut self, indices: &[u8]) -> std::io::Result<()> {
        let w = usize::from(self.size.0);
        let (x0, y0, x1, y1) = changed_rect(&self.previous, indices, w);
        let mut rect = Vec::with_capacity((x1 - x0) * (y1 - y0));
        for row in indices.chunks_exact(w.max(1)).take(y1).skip(y0) {
            rect.extend_from_slice(&row[x0..x1]);
        }
        let out = &mut self.out;
        // graphic control: keep the previous frame under this one, no transparency, the delay
        out.write_all(&[0x21, 0xF9, 0x04, 0x04])?;
        out.write_all(&self.delay.to_le_bytes())?;
        out.write_all(&[0x00, 0x00])?;
        // image descriptor: the changed rectangle, no local palette
        out.write_all(&[0x2C])?;
        for v in [x0, y0, x1 - x0, y1 - y0] {
            out.write_all(&u16::try_from(v).unwrap_or(u16::MAX).to_le_bytes())?;
        }
        out.write_all(&[0x00, 8])?;
        self.previous.clear();
        self.previous.extend_from_slice(indices);
        for block in self.lzw.encode(&rect).chunks(255) {
            out.write_all(&[block.len() as u8])?;
            out.write_all(block)?;
        }
        out.write_all(&[0x00])
    }

    /// Write the trailer and flush.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.write_all(&[0x3B])?;
        self.out.flush()
    }
}

/// The rectangle `(x0, y0, x1, y1)` (ends exclusive) of the pixels of `frame` that differ
/// from `previous` (rows of `w`): the whole frame without a previous one of the same size, a
/// single pixel if nothing changed.
fn changed_rect(previous: &[u8], frame: &[u8], w: usize) -> (usize, usize, usize, usize) {
    let h = frame.len() / w.max(1);
    if previous.len() != frame.len() || w == 0 {
        return (0, 0, w, h);
    }
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (y, (a, b)) in previous
        .chunks_exact(w)
        .zip(frame.chunks_exact(w))
        .enumerate()
    {
        if a == b {
            continue;
        }
        let first = a.iter().zip(b).position(|(p, q)| p != q).unwrap_or(0);
        let last = w - a
            .iter()
            .rev()
            .zip(b.iter().rev())
            .position(|(p, q)| p != q)
            .unwrap_or(0);
        x0 = x0.min(first);
        x1 = x1.max(last);
        y0 = y0.min(y);
        y1 = y + 1;
    }
    if x1 <= x0 {
        (0, 0, 1, 1)
    } else {
        (x0, y0, x1, y1)
    }
}

/// Codes packed least significant bit first.
struct Bits {
    bytes: Vec<u8>,
    acc: u32,
    count: u32,
}

impl Bits {
    fn push(&mut self, code: u32, width: u32) {
        self.acc |= code << self.count;
        self.count += width;
        while self.count >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.count -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.count > 0 {
            self.bytes.push(self.acc as u8);
        }
        self.bytes
    }
}

/// GIF's variable-width LZW encoder (minimum code size 8), with its code table kept between
/// frames.
struct Lzw {
    /// `table[prefix · 256 + byte] = generation << 12 | code`; an entry of an older
    /// generation is empty, so clearing the table is one increment.
    table: Vec<u32>,
    generation: u32,
}

impl Lzw {
    fn new() -> Self {
        Lzw {
            table: vec![0; (MAX_CODE as usize) << 8],
            generation: 0,
        }
    }

    /// Start a fresh table.
    fn clear(&mut self) {
        self.generation += 1;
        if self.generation >= 1 << 20 {
            self.table.fill(0);
            self.generation = 1;
        }
    }

    /// The codes of `indices`, as in `compress`: a code is written with the current width,
    /// which grows after the write once the next free code exceeds the largest code of that
    /// width; a full table is cleared.
    fn encode(&mut self, indices: &[u8]) -> Vec<u8> {
        const CLEAR: u32 = 256;
        const END: u32 = 257;
        let mut bits = Bits {
            bytes: Vec::with_capacity(indices.len() / 2),
            acc: 0,
            count: 0,
        };
        self.clear();
        let mut width = 9;
        let mut max_code = (1 << width) - 1;
        let mut free = END + 1;
        bits.push(CLEAR, width);
        let Some((&first, rest)) = indices.split_first() else {
            bits.push(END, width);
            return bits.finish();
        };
        let mut prefix = u32::from(first);
        let emit = |bits: &mut Bits, code: u32, width: &mut u32, max_code: &mut u32, free: u32| {
            bits.push(code, *width);
            if free > *max_code && *width < 12 {
                *width += 1;
                *max_code = if *width == 12 {
                    MAX_CODE
                } else {
                    (1 << *width) - 1
                };
            }
        };
        for &k in rest {
            let key = ((prefix as usize) << 8) | usize::from(k);
            let entry = self.table[key];
            if entry >> 12 == self.generation {
                prefix = entry & 0xFFF;
                continue;
            }
            emit(&mut bits, prefix, &mut width, &mut max_code, free);
            prefix = u32::from(k);
            if free < MAX_CODE {
                self.table[key] = (self.generation << 12) | free;
                free += 1;
            } else {
                bits.push(CLEAR, width);
                self.clear();
                free = END + 1;
                width = 9;
                max_code = (1 << width) - 1;
            }
        }
        emit(&mut bits, prefix, &mut width, &mut max_code, free);
        bits.push(END, width);
        bits.finish()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Decode GIF LZW data (minimum code size 8) back to indices.
    pub fn unlzw(data: &[u8]) -> Vec<u8> {
        let (mut pos, mut width) = (0usize, 9u32);
        let read = |pos: &mut usize, width: u32| -> Option<u32> {
            let mut code = 0u32;
            for i in 0..width {
                let bit = *pos + i as usize;
                let byte = *data.get(bit / 8)?;
                code |= u32::from((byte >> (bit % 8)) & 1) << i;
            }
            *pos += width as usize;
            Some(code)
        };
        let mut dict: Vec<Vec<u8>> = vec![];
        let reset = |dict: &mut Vec<Vec<u8>>| {
            dict.clear();
            dict.extend((0..=255u8).map(|b| vec![b]));
            dict.push(vec![]);
            dict.push(vec![]);
        };
        reset(&mut dict);
        let mut out = vec![];
        let mut prev: Option<Vec<u8>> = None;
        while let Some(code) = read(&mut pos, width) {
            match code {
                256 => {
                    reset(&mut dict);
                    width = 9;
                    prev = None;
                    continue;
                }
                257 => break,
                _ => {}
            }
            let entry = if (code as usize) < dict.len() {
                dict[code as usize].clone()
            } else {
                let p = prev.clone().expect("a previous code");
                let mut e = p.clone();
                e.push(p[0]);
                e
            };
            out.extend_from_slice(&entry);
            if let Some(p) = prev {
                let mut e = p;
                e.push(entry[0]);
                dict.push(e);
                if dict.len() == (1 << width) && width < 12 {
                    width += 1;
                }
            }
            prev = Some(entry);
        }
        out
    }

    #[test]
    fn lzw_round_trips() {
        let mut state = 12345u32;
        let mut noise = || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        };
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![7],
            vec![0; 100_000],
            (0..70_000).map(|i| (i % 7) as u8).collect(),
            (0..50_000).map(|_| noise()).collect(),
            (0..200_000)
                .map(|i| if i % 1000 < 10 { noise() } else { 3 })
                .collect(),
        ];
        // one encoder for every case, as for the frames of a GIF
        let mut lzw = Lzw::new();
        for data in cases {
            assert_eq!(unlzw(&lzw.encode(&data)), data, "{} bytes", data.len());
        }
    }

    #[test]
    fn frames_store_the_changed_rectangle() {
        let w = 4;
        let a = vec![0u8; 12];
        assert_eq!(changed_rect(&[], &a, w), (0, 0, 4, 3));
        assert_eq!(changed_rect(&a, &a, w), (0, 0, 1, 1));
        let mut b = a.clone();
        b[5] = 1; // (1, 1)
        b[10] = 2; // (2, 2)
        assert_eq!(changed_rect(&a, &b, w), (1, 1, 3, 3));
    }

    #[test]
    fn palette_keeps_frequent_colours_and_maps_the_rest_to_the_nearest() {
        let frame: Vec<u8> = [[255, 255, 255]; 10]
            .into_iter()
            .chain([[0, 0, 255]; 3])
            .flatten()
            .collect();
        let mut palette = Palette::from_frames(&[&frame]);
        assert_eq!(palette.colours, vec![[255, 255, 255], [0, 0, 255]]);
        assert_eq!(
            palette.indices(&[255, 255, 255, 0, 0, 255, 10, 10, 240]),
            vec![0, 1, 1]
        );
    }
}
