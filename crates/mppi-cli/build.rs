//! Puts the directory of MuJoCo's shared library (fetched and linked by crates/mppi-mujoco's
//! build script) into the `mppi` binary's rpath, so it runs without `LD_LIBRARY_PATH`.

fn main() {
    if let Ok(dir) = std::env::var("DEP_MPPI_MUJOCO_LIB_DIR") {
        println!("cargo::rustc-link-arg-bins=-Wl,-rpath,{dir}");
        println!("cargo::rustc-link-arg-tests=-Wl,-rpath,{dir}");
    }
}
