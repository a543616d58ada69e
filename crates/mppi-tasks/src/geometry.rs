//! Planar geometry shared by the navigation and racing tasks: closed polylines (race-track
//! centerlines) with arc-length projection, obstacle shapes with signed distances, and a
//! precomputed occupancy/inflation costmap.
//!
//! Every function here is total: NaN or infinite inputs give NaN/infinite or "outside"
//! answers, never a panic.

use mppi::fastmath::Real;

use crate::Circle;

/// One straight piece of a [`ClosedPolyline`]: from `(ax, ay)` along the unit tangent
/// `(tx, ty)` for `len` meters, starting at arc length `s0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Start point x.
    pub ax: f64,
    /// Start point y.
    pub ay: f64,
    /// Unit tangent x.
    pub tx: f64,
    /// Unit tangent y.
    pub ty: f64,
    /// Length (> 0).
    pub len: f64,
    /// Arc length of the start point along the whole polyline.
    pub s0: f64,
}

impl Segment {
    /// Closest point of the segment to `(px, py)`: returns `(a, d²)` where
    /// `a = clamp((p − A)·t, 0, len)` is the distance along the segment and
    /// `d² = |p − (A + a t)|²` the squared distance to that foot point.
    #[inline(always)]
    #[must_use]
    pub fn closest(&self, px: f64, py: f64) -> (f64, f64) {
        let (rx, ry) = (px - self.ax, py - self.ay);
        let a = (rx * self.tx + ry * self.ty).clamp(0.0, self.len);
        let (ex, ey) = (rx - a * self.tx, ry - a * self.ty);
        (a, ex * ex + ey * ey)
    }

    /// Side of `(px, py)` relative to the segment's line: `t × (p − A)`, positive on the left.
    #[inline(always)]
    #[must_use]
    pub fn side(&self, px: f64, py: f64) -> f64 {
        self.tx * (py - self.ay) - self.ty * (px - self.ax)
    }
}

/// Where a point projects onto a [`ClosedPolyline`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    /// Index of the closest segment.
    pub segment: usize,
    /// Arc length of the foot point, in `[0, length)`.
    pub s: f64,
    /// Signed lateral offset: `+d` left of the direction of travel, `−d` right of it.
    pub lateral: f64,
    /// Unsigned distance `d` to the polyline.
    pub distance: f64,
    /// Unit tangent `(tx, ty)` of the closest segment.
    pub tangent: (f64, f64),
}

/// A closed polyline `P₀ → P₁ → … → P_{n−1} → P₀` with arc-length parametrization.
///
/// ```
/// use mppi_tasks::geometry::ClosedPolyline;
/// let square = ClosedPolyline::new(&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]).unwrap();
/// assert_eq!(square.length(), 4.0);
/// let p = square.project(0.5, -0.25); // below the first edge: right of travel
/// assert_eq!((p.s, p.lateral), (0.5, -0.25));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedPolyline {
    points: Vec<(f64, f64)>,
    segments: Vec<Segment>,
    length: f64,
}

impl ClosedPolyline {
    /// Build from at least three finite vertices; consecutive duplicates are dropped.
    /// Returns `None` if fewer than three distinct vertices remain or a coordinate is not finite.
    #[must_use]
    pub fn new(points: &[(f64, f64)]) -> Option<Self> {
        if points.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
            return None;
        }
        let mut pts: Vec<(f64, f64)> = Vec::with_capacity(points.len());
        for &p in points {
            if pts.last() != Some(&p) {
                pts.push(p);
            }
        }
        while pts.len() > 1 && pts.first() == pts.last() {
            pts.pop();
        }
        if pts.len() < 3 {
            return None;
        }
        let mut segments = Vec::with_capacity(pts.len());
        let mut s = 0.0;
        for i in 0..pts.len() {
            let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let len = dx.hypot(dy);
            if !(len > 0.0 && len.is_finite()) {
                return None;
            }
            segments.push(Segment {
                ax: a.0,
                ay: a.1,
                tx: dx / len,
                ty: dy / len,
                len,
                s0: s,
            });
            s += len;
        }
        Some(ClosedPolyline {
            points: pts,
            segments,
            length: s,
        })
    }

    /// A "stadium" oval: two straights of length `straight` joined by half circles of
    /// `radius`, centered on the origin, travelled counter-clockwise, starting at the middle
    /// of the bottom straight `(0, −radius)` heading `+x`. Each half circle gets `arc_points`
    /// interior vertices (at least 1, at most 10 000). A size that is not a finite positive
    /// number is replaced by 1.
    #[must_use]
    pub fn stadium(straight: f64, radius: f64, arc_points: usize) -> Self {
        let sane = |v: f64| if v > 0.0 && v.is_finite() { v } else { 1.0 };
        let (straight, radius) = (sane(straight), sane(radius));
        let h = straight / 2.0;
        let k = arc_points.clamp(1, 10_000);
        let mut pts = vec![(0.0, -radius), (h, -radius)];
        // right half circle around (h, 0): angle −π/2 → π/2
        for i in 1..=k {
            let a = -std::f64::consts::FRAC_PI_2 + std::f64::consts::PI * i as f64 / (k + 1) as f64;
            pts.push((h + radius * a.cos(), radius * a.sin()));
        }
        pts.push((h, radius));
        pts.push((-h, radius));
        // left half circle around (−h, 0): angle π/2 → 3π/2
        for i in 1..=k {
            let a = std::f64::consts::FRAC_PI_2 + std::f64::consts::PI * i as f64 / (k + 1) as f64;
            pts.push((-h + radius * a.cos(), radius * a.sin()));
        }
        pts.push((-h, -radius));
        ClosedPolyline::new(&pts).unwrap_or_else(Self::unit_square)
    }

    /// The counter-clockwise unit square (a fallback that cannot fail).
    fn unit_square() -> Self {
        let seg = |ax, ay, tx, ty, s0| Segment {
            ax,
            ay,
            tx,
            ty,
            len: 1.0,
            s0,
        };
        ClosedPolyline {
            points: vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)],
            segments: vec![
                seg(0.0, 0.0, 1.0, 0.0, 0.0),
                seg(1.0, 0.0, 0.0, 1.0, 1.0),
                seg(1.0, 1.0, -1.0, 0.0, 2.0),
                seg(0.0, 1.0, 0.0, -1.0, 3.0),
            ],
            length: 4.0,
        }
    }

    /// The (deduplicated) vertices.
    #[must_use]
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }
    /// The segments, in order (`segments()[i]` runs from vertex `i` to vertex `i + 1`).
    #[must_use]
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
    /// Total arc length `L`.
    #[must_use]
    pub fn length(&self) -> f64 {
        self.length
    }

    /// Closest point of the polyline to `(px, py)` (the first closest segment on ties).
    #[must_use]
    pub fn project(&self, px: f64, py: f64) -> Projection {
        let mut best = (0usize, 0.0, f64::INFINITY);
        for (i, seg) in self.segments.iter().enumerate() {
            let (a, d2) = seg.closest(px, py);
            if d2 < best.2 {
                best = (i, a, d2);
            }
        }
        let seg = &self.segments[best.0.min(self.segments.len().saturating_sub(1))];
        let distance = best.2.sqrt();
        let lateral = if seg.side(px, py) < 0.0 {
            -distance
        } else {
            distance
        };
        Projection {
            segment: best.0,
            s: seg.s0 + best.1,
            lateral,
            distance,
            tangent: (seg.tx, seg.ty),
        }
    }

    /// Arc-length difference `s_to − s_from` wrapped to `[−L/2, L/2)`: the signed progress
    /// between two projections on the closed curve.
    #[must_use]
    pub fn progress(&self, s_from: f64, s_to: f64) -> f64 {
        let l = self.length;
        (s_to - s_from + 0.5 * l).rem_euclid(l) - 0.5 * l
    }

    /// Point and heading (radians) at arc length `s` (taken modulo `L`).
    #[must_use]
    pub fn point_at(&self, s: f64) -> (f64, f64, f64) {
        let s = s.rem_euclid(self.length);
        let seg = self
            .segments
            .iter()
            .rev()
            .find(|g| g.s0 <= s)
            .unwrap_or(&self.segments[0]);
        let a = (s - seg.s0).clamp(0.0, seg.len);
        (
            seg.ax + a * seg.tx,
            seg.ay + a * seg.ty,
            seg.ty.atan2(seg.tx),
        )
    }
}

/// Squared distance from `(px, py)` to the segment `A → B` (a point if `A = B`).
#[must_use]
pub fn segment_distance_sq(px: f64, py: f64, a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (rx, ry) = (px - a.0, py - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        ((rx * dx + ry * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (ex, ey) = (rx - t * dx, ry - t * dy);
    ex * ex + ey * ey
}

/// Smallest signed clearance of a straight motion `A → B` from a set of circles:
/// `min_i (dist(cᵢ, AB) − rᵢ)`, negative if the segment enters a circle; `+∞` with no circles.
#[must_use]
pub fn path_clearance(a: (f64, f64), b: (f64, f64), circles: &[Circle]) -> f64 {
    circles
        .iter()
        .map(|c| segment_distance_sq(c.x, c.y, a, b).sqrt() - c.r)
        .fold(f64::INFINITY, f64::min)
}

/// An obstacle shape for a [`Costmap`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// A disc.
    Circle(Circle),
    /// An axis-aligned rectangle `[x_min, x_max] × [y_min, y_max]`.
    Rect {
        /// Left edge.
        x_min: f64,
        /// Right edge.
        x_max: f64,
        /// Bottom edge.
        y_min: f64,
        /// Top edge.
        y_max: f64,
    },
}

impl Shape {
    /// Signed distance from `(px, py)` to the shape's boundary (negative inside).
    #[must_use]
    pub fn signed_distance(&self, px: f64, py: f64) -> f64 {
        match *self {
            Shape::Circle(c) => c.signed_distance(px, py),
            Shape::Rect {
                x_min,
                x_max,
                y_min,
                y_max,
            } => {
                let (cx, cy) = (0.5 * (x_min + x_max), 0.5 * (y_min + y_max));
                let (hx, hy) = (0.5 * (x_max - x_min).abs(), 0.5 * (y_max - y_min).abs());
                let qx = (px - cx).abs() - hx;
                let qy = (py - cy).abs() - hy;
                qx.max(0.0).hypot(qy.max(0.0)) + qx.max(qy).min(0.0)
            }
        }
    }
}

/// Cell value of an obstacle (or out-of-map) cell.
pub const LETHAL: f64 = 1.0;

/// A 2-D grid of costs in `[0, 1]` over a rectangle, precomputed from obstacle shapes.
///
/// Cell `(i, j)` (column `i` along x, row `j` along y) covers
/// `[x₀ + i·res, x₀ + (i+1)·res) × [y₀ + j·res, y₀ + (j+1)·res)`; its value is computed at the
/// cell center `c` from the clearance `d(c) = minₖ sdₖ(c) − r_robot` (shapes `k`):
///
/// ```text
/// value = 1                            if d ≤ 0               (lethal: the robot's disc hits)
///       = 0.9 · (1 − d/inflation)^p    if 0 < d < inflation   (inflation ramp, p = `falloff`)
///       = 0                            otherwise
/// ```
/// Points outside the grid read as [`LETHAL`].
///
/// ```
/// use mppi_tasks::{Circle, geometry::{Costmap, Shape, LETHAL}};
/// let shapes = [Shape::Circle(Circle { x: 1.0, y: 1.0, r: 0.3 })];
/// let map = Costmap::from_shapes(((0.0, 2.0), (0.0, 2.0)), 0.05, &shapes, 0.0, 0.5, 5.0).unwrap();
/// assert_eq!(map.value(1.0, 1.0), LETHAL);
/// assert_eq!(map.value(0.02, 0.02), 0.0);
/// assert_eq!(map.value(-1.0, 0.5), LETHAL); // outside the map
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Costmap {
    x0: f64,
    y0: f64,
    resolution: f64,
    width: usize,
    height: usize,
    data: Vec<f64>,
    /// `1 / resolution`.
    inv_resolution: f64,
    /// For the lower-left cell-center corner `(i, j)` of every interpolation square,
    /// `i ∈ −1..=width−1`, `j ∈ −1..=height−1` (stored at `(j+1)·(width+1) + i+1`): the four
    /// corner values `[v(i,j), v(i+1,j), v(i,j+1), v(i+1,j+1)]`, [`LETHAL`] outside the grid.
    /// One 32-byte read per lookup instead of five scattered ones.
    quads: Vec<[f64; 4]>,
}

impl Costmap {
    /// Rasterize `shapes` over `((x_min, x_max), (y_min, y_max))` with square cells of side
    /// `resolution`, a robot of radius `robot_radius`, an inflation band of width `inflation`
    /// and ramp exponent `falloff` (see the type's docs; the ramp reaches 0 continuously at the
    /// band's outer edge). `None` on an empty or non-finite extent, a non-positive resolution,
    /// negative radius/inflation/falloff, or more than 16 M cells.
    #[must_use]
    pub fn from_shapes(
        extent: ((f64, f64), (f64, f64)),
        resolution: f64,
        shapes: &[Shape],
        robot_radius: f64,
        inflation: f64,
        falloff: f64,
    ) -> Option<Self> {
        let ((x_min, x_max), (y_min, y_max)) = extent;
        let finite = [
            x_min,
            x_max,
            y_min,
            y_max,
            resolution,
            robot_radius,
            inflation,
            falloff,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !(finite && resolution > 0.0 && x_max > x_min && y_max > y_min)
            || robot_radius < 0.0
            || inflation < 0.0
            || falloff < 0.0
        {
            return None;
        }
        let wf = ((x_max - x_min) / resolution).ceil();
        let hf = ((y_max - y_min) / resolution).ceil();
        if !(wf >= 1.0 && hf >= 1.0 && wf * hf <= 16.0e6) {
            return None;
        }
        let (width, height) = (wf as usize, hf as usize);
        let mut data = vec![0.0; width * height];
        for j in 0..height {
            for i in 0..width {
                let cx = x_min + (i as f64 + 0.5) * resolution;
                let cy = y_min + (j as f64 + 0.5) * resolution;
                let d = shapes
                    .iter()
                    .map(|s| s.signed_distance(cx, cy))
                    .fold(f64::INFINITY, f64::min)
                    - robot_radius;
                data[j * width + i] = if d <= 0.0 {
                    LETHAL
                } else if d < inflation {
                    let f = 1.0 - d / inflation;
                    0.9 * f.powf(falloff)
                } else {
                    0.0
                };
            }
        }
        Some(Costmap::with_data(
            x_min, y_min, resolution, width, height, data,
        ))
    }

    /// Assemble a map and its interpolation table.
    fn with_data(
        x0: f64,
        y0: f64,
        resolution: f64,
        width: usize,
        height: usize,
        data: Vec<f64>,
    ) -> Self {
        let mut map = Costmap {
            x0,
            y0,
            resolution,
            width,
            height,
            data,
            inv_resolution: 1.0 / resolution,
            quads: Vec::with_capacity((width + 1) * (height + 1)),
        };
        // corner (i, j) of the padded grid is cell (i − 1, j − 1)
        let padded = |i: usize, j: usize| {
            if i == 0 || j == 0 {
                LETHAL
            } else {
                map.cell_value(i - 1, j - 1)
            }
        };
        let quads: Vec<[f64; 4]> = (0..=height)
            .flat_map(|j| (0..=width).map(move |i| (i, j)))
            .map(|(i, j)| {
                [
                    padded(i, j),
                    padded(i + 1, j),
                    padded(i, j + 1),
                    padded(i + 1, j + 1),
                ]
            })
            .collect();
        map.quads = quads;
        map
    }

    /// A single free 1 m cell at the origin (an infallible placeholder map).
    #[must_use]
    pub fn empty() -> Self {
        Costmap::with_data(0.0, 0.0, 1.0, 1, 1, vec![0.0])
    }

    /// Cell side in meters.
    #[must_use]
    pub fn resolution(&self) -> f64 {
        self.resolution
    }
    /// Grid size `(columns, rows)`.
    #[must_use]
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }
    /// Lower-left corner `(x₀, y₀)`.
    #[must_use]
    pub fn origin(&self) -> (f64, f64) {
        (self.x0, self.y0)
    }

    /// Cell `(column, row)` containing `(x, y)`, or `None` outside the map (or NaN).
    #[inline]
    #[must_use]
    pub fn cell(&self, x: f64, y: f64) -> Option<(usize, usize)> {
        let fx = (x - self.x0) / self.resolution;
        let fy = (y - self.y0) / self.resolution;
        if fx >= 0.0 && fy >= 0.0 && fx < self.width as f64 && fy < self.height as f64 {
            Some((fx as usize, fy as usize))
        } else {
            None
        }
    }

    /// Value of cell `(column, row)`; [`LETHAL`] outside the grid.
    #[inline]
    #[must_use]
    pub fn cell_value(&self, i: usize, j: usize) -> f64 {
        if i < self.width && j < self.height {
            self.data[j * self.width + i]
        } else {
            LETHAL
        }
    }

    /// Nearest-cell value at `(x, y)`: the value of the cell containing it, [`LETHAL`] outside.
    #[inline]
    #[must_use]
    pub fn value(&self, x: f64, y: f64) -> f64 {
        match self.cell(x, y) {
            Some((i, j)) => self.data[j * self.width + i],
            None => LETHAL,
        }
    }

    /// Bilinear interpolation of the cell-center values at `(x, y)`; cells outside the grid
    /// count as [`LETHAL`] (so does a NaN point).
    #[must_use]
    pub fn bilinear(&self, x: f64, y: f64) -> f64 {
        let fx = (x - self.x0) / self.resolution - 0.5;
        let fy = (y - self.y0) / self.resolution - 0.5;
        if !(fx.is_finite() && fy.is_finite()) {
            return LETHAL;
        }
        let (ix, iy) = (fx.floor(), fy.floor());
        let (ax, ay) = (fx - ix, fy - iy);
        let at = |di: f64, dj: f64| {
            let (ci, cj) = (ix + di, iy + dj);
            if ci >= 0.0 && cj >= 0.0 && ci < self.width as f64 && cj < self.height as f64 {
                self.data[cj as usize * self.width + ci as usize]
            } else {
                LETHAL
            }
        };
        let bottom = at(0.0, 0.0) * (1.0 - ax) + at(1.0, 0.0) * ax;
        let top = at(0.0, 1.0) * (1.0 - ax) + at(1.0, 1.0) * ax;
        bottom * (1.0 - ay) + top * ay
    }

    /// The planning cost of the map at `(x, y)`: [`LETHAL`] if the nearest cell center's cell is
    /// lethal (or the point is off the map, or NaN), else the bilinear interpolation of the
    /// cell-center values, kept below [`LETHAL`]. Agrees with
    /// `if is_lethal { LETHAL } else { bilinear.min(LETHAL − 1e-9) }` up to round-off at cell
    /// edges, and is what [`Costmap::lookup_block`] computes lane by lane.
    ///
    /// ```
    /// use mppi_tasks::{Circle, geometry::{Costmap, Shape, LETHAL}};
    /// let shapes = [Shape::Circle(Circle { x: 1.0, y: 1.0, r: 0.3 })];
    /// let map = Costmap::from_shapes(((0.0, 2.0), (0.0, 2.0)), 0.05, &shapes, 0.0, 0.5, 5.0).unwrap();
    /// assert_eq!(map.lookup(1.0, 1.0), LETHAL);
    /// assert_eq!(map.lookup(-1.0, 0.5), LETHAL);
    /// assert_eq!(map.lookup(f64::NAN, 0.5), LETHAL);
    /// assert!(map.lookup(0.5, 1.0) < LETHAL);
    /// ```
    #[inline(always)]
    #[must_use]
    pub fn lookup(&self, x: f64, y: f64) -> f64 {
        let (index, ax, ay) = self.square(x, y);
        let q = self.quads.get(index).copied().unwrap_or([LETHAL; 4]);
        Self::interpolate(q, ax, ay)
    }

    /// [`Costmap::lookup`] for a block of points: `out[l] = lookup(xs[l], ys[l])`. Index
    /// arithmetic and interpolation run across lanes (they vectorize); only the table reads
    /// are one at a time.
    ///
    /// In `f64` or `f32` (float32 rollouts): `f32` points are widened exactly and the value is
    /// rounded once. A non-lethal value is at most `0.975` (the nearest corner, at most
    /// `0.9`, has weight at least ¼), so rounding never makes it [`LETHAL`].
    #[inline]
    pub fn lookup_block<R: Real>(&self, xs: &[R], ys: &[R], out: &mut [R]) {
        const CHUNK: usize = 32;
        let lanes = out.len();
        let (xs, ys) = (&xs[..lanes], &ys[..lanes]);
        for ((xc, yc), oc) in xs
            .chunks(CHUNK)
            .zip(ys.chunks(CHUNK))
            .zip(out.chunks_mut(CHUNK))
        {
            let n = oc.len();
            let (mut index, mut ax, mut ay) = ([0usize; CHUNK], [0.0; CHUNK], [0.0; CHUNK]);
            for l in 0..n {
                (index[l], ax[l], ay[l]) = self.square(xc[l].to_f64(), yc[l].to_f64());
            }
            let mut q = [[0.0; 4]; CHUNK];
            for l in 0..n {
                q[l] = self.quads.get(index[l]).copied().unwrap_or([LETHAL; 4]);
            }
            for l in 0..n {
                oc[l] = R::c(Self::interpolate(q[l], ax[l], ay[l]));
            }
        }
    }

    /// Table index of the interpolation square around `(x, y)` and the fractional position
    /// in it. Points beyond the padded grid are clamped onto its lethal border (NaN too:
    /// `max` returns the non-NaN operand).
    #[inline(always)]
    fn square(&self, x: f64, y: f64) -> (usize, f64, f64) {
        let fx = ((x - self.x0) * self.inv_resolution - 0.5)
            .max(-1.0)
            .min(self.width as f64 - 1e-9);
        let fy = ((y - self.y0) * self.inv_resolution - 0.5)
            .max(-1.0)
            .min(self.height as f64 - 1e-9);
        let (ix, iy) = (fx.floor(), fy.floor());
        // the index is a small exact integer in f64 (the clamps keep it in the table); adding
        // 1.5·2⁵² leaves it in the low mantissa bits, an integer conversion without the
        // saturation checks of `as` (AVX2 has no f64 -> u64 conversion)
        let index = (iy + 1.0) * (self.width + 1) as f64 + (ix + 1.0);
        let bits = (index + 6_755_399_441_055_744.0).to_bits() & 0xffff_ffff;
        (bits as usize, fx - ix, fy - iy)
    }

    /// Nearest corner lethal → [`LETHAL`]; else the bilinear value, kept below [`LETHAL`].
    #[inline(always)]
    fn interpolate(q: [f64; 4], ax: f64, ay: f64) -> f64 {
        let near_bottom = if ax < 0.5 { q[0] } else { q[1] };
        let near_top = if ax < 0.5 { q[2] } else { q[3] };
        let near = if ay < 0.5 { near_bottom } else { near_top };
        let bottom = q[0] * (1.0 - ax) + q[1] * ax;
        let top = q[2] * (1.0 - ax) + q[3] * ax;
        let value = (bottom * (1.0 - ay) + top * ay).min(LETHAL - 1e-9);
        if near >= LETHAL { LETHAL } else { value }
    }

    /// Is `(x, y)` in a lethal (obstacle or out-of-map) cell?
    #[must_use]
    pub fn is_lethal(&self, x: f64, y: f64) -> bool {
        self.value(x, y) >= LETHAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_matches_nearest_cell_and_bilinear_and_block_matches_scalar() {
        let shapes = [
            Shape::Circle(Circle {
                x: 1.0,
                y: 1.0,
                r: 0.3,
            }),
            Shape::Circle(Circle {
                x: 2.2,
                y: 0.4,
                r: 0.2,
            }),
        ];
        let map = Costmap::from_shapes(((0.0, 3.0), (-0.5, 2.0)), 0.05, &shapes, 0.1, 0.5, 2.0)
            .expect("map");
        // points at fixed fractions of a cell (never on a cell edge or a cell-center line,
        // where the two formulations may round to different cells), inside and around the map
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for i in -8..68 {
            for j in -8..58 {
                for (fx, fy) in [(0.13, 0.71), (0.37, 0.29), (0.61, 0.93), (0.89, 0.07)] {
                    xs.push((i as f64 + fx) * 0.05);
                    ys.push(-0.5 + (j as f64 + fy) * 0.05);
                }
            }
        }
        xs.extend([f64::NAN, 1.0, f64::INFINITY, -1e300]);
        ys.extend([1.0, f64::NAN, 0.0, 1e300]);
        let mut block = vec![0.0; xs.len()];
        map.lookup_block(&xs, &ys, &mut block);
        let mut lethal = 0;
        for ((x, y), b) in xs.iter().zip(&ys).zip(&block) {
            let v = map.lookup(*x, *y);
            assert_eq!(v.to_bits(), b.to_bits(), "block vs scalar at ({x}, {y})");
            let reference = if map.is_lethal(*x, *y) {
                LETHAL
            } else {
                map.bilinear(*x, *y).min(LETHAL - 1e-9)
            };
            assert!(
                (v - reference).abs() < 1e-12,
                "({x}, {y}): {v} vs {reference}"
            );
            lethal += usize::from(v == LETHAL);
        }
        // the check covers free, ramp and lethal values
        assert!(lethal > 100 && block.iter().any(|v| *v > 0.0 && *v < 0.9));
    }

    #[test]
    fn projection_on_known_points() {
        let sq = ClosedPolyline::new(&[(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0), (0.0, 0.0)])
            .unwrap();
        assert_eq!(sq.points().len(), 4);
        assert_eq!(sq.length(), 8.0);
        // inside, closest to the right edge (x = 2), 0.5 up it
        let p = sq.project(1.75, 0.5);
        assert_eq!(p.segment, 1);
        assert_eq!(p.s, 2.5);
        assert_eq!(p.lateral, 0.25); // left of travel (+y direction) is inside
        assert_eq!(p.tangent, (0.0, 1.0));
        // outside, beyond the top edge
        let p = sq.project(0.5, 3.0);
        assert_eq!(p.segment, 2);
        assert_eq!(p.s, 5.5);
        assert_eq!(p.lateral, -1.0);
        // corner region: distance to vertex
        let p = sq.project(3.0, -1.0);
        assert!((p.distance - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(sq.progress(7.5, 0.5), 1.0);
        assert_eq!(sq.progress(0.5, 7.5), -1.0);
        assert_eq!(sq.point_at(9.0), (1.0, 0.0, 0.0));
        // NaN input: no panic
        let p = sq.project(f64::NAN, 0.0);
        assert!(p.segment < 4);
    }

    #[test]
    fn stadium_geometry() {
        let st = ClosedPolyline::stadium(10.0, 5.0, 15);
        let expect = 20.0 + 2.0 * std::f64::consts::PI * 5.0;
        assert!((st.length() - expect).abs() < 0.1, "{}", st.length());
        let p = st.project(0.0, -4.0);
        assert!((p.lateral - 1.0).abs() < 1e-12 && p.s.abs() < 1e-12);
        let p = st.project(2.0, 5.5);
        assert!((p.lateral + 0.5).abs() < 1e-12);
        assert_eq!(p.tangent, (-1.0, 0.0));
        assert_eq!(
            ClosedPolyline::stadium(-1.0, 5.0, 3),
            ClosedPolyline::stadium(1.0, 5.0, 3)
        );
        let sq = ClosedPolyline::unit_square();
        assert_eq!(ClosedPolyline::new(sq.points()).as_ref(), Some(&sq));
        assert!(ClosedPolyline::new(&[(0.0, 0.0), (1.0, 0.0)]).is_none());
        assert!(ClosedPolyline::new(&[(0.0, 0.0), (1.0, f64::NAN), (1.0, 1.0)]).is_none());
    }

    #[test]
    fn shapes_and_segments() {
        let r = Shape::Rect {
            x_min: 0.0,
            x_max: 2.0,
            y_min: 0.0,
            y_max: 1.0,
        };
        assert_eq!(r.signed_distance(1.0, 0.5), -0.5);
        assert_eq!(r.signed_distance(3.0, 0.5), 1.0);
        assert_eq!(r.signed_distance(5.0, 5.0), 5.0);
        assert_eq!(segment_distance_sq(1.0, 1.0, (0.0, 0.0), (2.0, 0.0)), 1.0);
        assert_eq!(segment_distance_sq(3.0, 0.0, (0.0, 0.0), (2.0, 0.0)), 1.0);
        let c = [Circle {
            x: 1.0,
            y: 0.5,
            r: 0.25,
        }];
        assert_eq!(path_clearance((0.0, 0.0), (2.0, 0.0), &c), 0.25);
        assert!(path_clearance((0.0, 0.5), (2.0, 0.5), &c) < 0.0);
    }

    #[test]
    fn costmap_cells() {
        let shapes = [
            Shape::Circle(Circle {
                x: 1.0,
                y: 1.0,
                r: 0.3,
            }),
            Shape::Rect {
                x_min: 2.0,
                x_max: 2.5,
                y_min: 0.0,
                y_max: 0.5,
            },
        ];
        let map =
            Costmap::from_shapes(((0.0, 3.0), (0.0, 2.0)), 0.05, &shapes, 0.1, 0.5, 2.0).unwrap();
        assert_eq!(map.size(), (60, 40));
        assert_eq!(map.cell(1.02, 0.99), Some((20, 19)));
        assert_eq!(map.cell(3.0, 1.0), None);
        assert_eq!(map.cell(f64::NAN, 1.0), None);
        // circle center and rectangle interior: lethal
        assert_eq!(map.value(1.0, 1.0), LETHAL);
        assert!(map.is_lethal(2.2, 0.2));
        // robot radius inflates: cell (27, 20) has center (1.375, 1.025), 0.0758 outside the
        // circle, i.e. within the robot radius 0.1
        assert_eq!(map.cell_value(27, 20), LETHAL);
        // cell (30, 20): center (1.525, 1.025), clearance 0.525 - 0.3 - 0.1 = 0.1249..
        let d = (0.525f64.powi(2) + 0.025f64.powi(2)).sqrt() - 0.3 - 0.1;
        let expect = 0.9 * (1.0 - d / 0.5).powi(2);
        assert!((map.cell_value(30, 20) - expect).abs() < 1e-12);
        // far corner: free
        assert_eq!(map.value(0.01, 1.99), 0.0);
        // outside: lethal
        assert_eq!(map.value(-0.1, 1.0), LETHAL);
        assert_eq!(map.cell_value(60, 0), LETHAL);
        // bilinear at a cell center equals the cell; between two free cells it is free
        assert_eq!(map.bilinear(0.025, 1.975), 0.0);
        assert!((map.bilinear(1.525, 1.025) - map.cell_value(30, 20)).abs() < 1e-12);
        let mid = map.bilinear(1.55, 1.025);
        let expect = 0.5 * (map.cell_value(30, 20) + map.cell_value(31, 20));
        assert!((mid - expect).abs() < 1e-15);
        assert_eq!(map.bilinear(f64::INFINITY, 0.0), LETHAL);
        assert!(
            Costmap::from_shapes(((0.0, -1.0), (0.0, 1.0)), 0.05, &[], 0.0, 0.0, 0.0).is_none()
        );
        assert!(Costmap::from_shapes(((0.0, 1.0), (0.0, 1.0)), 0.0, &[], 0.0, 0.0, 0.0).is_none());
        let e = Costmap::empty();
        assert_eq!((e.value(0.5, 0.5), e.value(1.5, 0.5)), (0.0, LETHAL));
    }
}
