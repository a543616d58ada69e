//! Links MuJoCo 3.17.0 without a manual install.
//!
//! mujoco-rs 7.0.0 is built against MuJoCo 3.17.0. Its own download reaches GitHub, which
//! machines limited to the package registries cannot, so this script takes the shared library
//! out of PyPI's `mujoco==3.17.0` wheel instead (`python3 -m pip download`), once per target
//! directory, and links it. `MPPI_MUJOCO_LIB_DIR=/abs/dir` (a directory holding
//! `libmujoco.so.3.17.0` or `libmujoco.so`) skips the download; `PYTHON` picks the interpreter.
//!
//! The directory goes into the rpath of this crate's tests and, through
//! `DEP_MPPI_MUJOCO_LIB_DIR`, of the `mppi` binary, so nothing has to set `LD_LIBRARY_PATH`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = "3.17.0";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=MPPI_MUJOCO_LIB_DIR");
    println!("cargo::rerun-if-env-changed=PYTHON");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        fail(
            "crates/mppi-mujoco is built and tested on Linux only (x86-64 or aarch64); set \
             MPPI_MUJOCO_LIB_DIR to a MuJoCo 3.17.0 library directory to try another system",
        );
    }
    let dir = match env::var_os("MPPI_MUJOCO_LIB_DIR") {
        Some(dir) => user_dir(PathBuf::from(dir)),
        None => fetched_dir(),
    };
    let dir = dir.display();
    println!("cargo::rustc-link-search=native={dir}");
    println!("cargo::rustc-link-lib=dylib=mujoco");
    println!("cargo::rustc-link-arg=-Wl,-rpath,{dir}");
    println!("cargo::metadata=lib_dir={dir}");
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    panic!("{message}");
}

/// A directory the user named: it must hold the library under the name the linker wants.
fn user_dir(dir: PathBuf) -> PathBuf {
    if !dir.is_absolute() {
        fail(&format!(
            "MPPI_MUJOCO_LIB_DIR must be an absolute path (got {})",
            dir.display()
        ));
    }
    let versioned = dir.join(format!("libmujoco.so.{VERSION}"));
    let plain = dir.join("libmujoco.so");
    if !plain.exists() {
        if !versioned.is_file() {
            fail(&format!(
                "MPPI_MUJOCO_LIB_DIR={} holds neither libmujoco.so nor libmujoco.so.{VERSION}",
                dir.display()
            ));
        }
        link_plain_name(&dir);
    }
    dir
}

/// `<target dir>/mujoco-3.17.0/lib`, filled from the PyPI wheel the first time.
fn fetched_dir() -> PathBuf {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out: share one copy between profiles.
    let target = out.ancestors().nth(4).unwrap_or(&out).to_path_buf();
    let dir = target.join(format!("mujoco-{VERSION}")).join("lib");
    let versioned = dir.join(format!("libmujoco.so.{VERSION}"));
    if !versioned.is_file() {
        download(&dir, &versioned);
    }
    link_plain_name(&dir);
    dir
}

/// The linker looks for `libmujoco.so`; the wheel ships only the versioned name.
fn link_plain_name(dir: &Path) {
    let plain = dir.join("libmujoco.so");
    if fs::symlink_metadata(&plain).is_err() {
        std::os::unix::fs::symlink(format!("libmujoco.so.{VERSION}"), &plain)
            .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", plain.display())));
    }
}

fn download(dir: &Path, versioned: &Path) {
    let python = env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let wheels = dir.with_file_name("wheel");
    fs::create_dir_all(&wheels)
        .and_then(|()| fs::create_dir_all(dir))
        .unwrap_or_else(|e| {
            fail(&format!("cannot create {}: {e}", dir.display()));
        });
    let hint = format!(
        "MuJoCo {VERSION} is taken from PyPI's `mujoco=={VERSION}` wheel with `{python} -m pip \
         download`; if this machine cannot reach PyPI, download that wheel elsewhere, unzip \
         mujoco/libmujoco.so.{VERSION} out of it into a directory and build with \
         MPPI_MUJOCO_LIB_DIR=<that absolute directory>"
    );
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
        ])
        .arg(format!("mujoco=={VERSION}"))
        .arg("-d")
        .arg(&wheels)
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run {python}: {e}. {hint}")));
    if !status.success() {
        fail(&format!(
            "`{python} -m pip download mujoco=={VERSION}` failed ({status}). {hint}"
        ));
    }
    // Unzip the one member with Python's zipfile (no unzip tool or crate needed), into a
    // temporary name first so that an interrupted build never leaves a truncated library.
    let partial = versioned.with_extension("partial");
    let script = format!(
        "import glob, sys, zipfile\n\
         names = glob.glob(sys.argv[1] + '/mujoco-{VERSION}-*.whl')\n\
         assert names, 'no mujoco-{VERSION} wheel in ' + sys.argv[1]\n\
         data = zipfile.ZipFile(names[0]).read('mujoco/libmujoco.so.{VERSION}')\n\
         open(sys.argv[2], 'wb').write(data)\n"
    );
    let status = Command::new(&python)
        .args(["-c", &script])
        .arg(&wheels)
        .arg(&partial)
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run {python}: {e}. {hint}")));
    if !status.success() {
        fail(&format!(
            "could not unpack libmujoco.so.{VERSION} from the wheel. {hint}"
        ));
    }
    fs::rename(&partial, versioned)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", versioned.display())));
    let _ = fs::remove_dir_all(&wheels);
}
