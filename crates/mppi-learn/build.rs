//! Puts the directory of MuJoCo's shared library (fetched and linked by crates/mppi-mujoco's
//! build script, which `mppi_learn::env` uses) into the rpath of this crate's tests, examples
//! and doc tests, so they run without `LD_LIBRARY_PATH` (as crates/mppi-cli/build.rs does for
//! the `mppi` binary).

fn main() {
    if let Ok(dir) = std::env::var("DEP_MPPI_MUJOCO_LIB_DIR") {
        println!("cargo::rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
