//! Gives the shared library its soname, so that programs linked against
//! `libsesphr.so` record `libsesphr.so.0` and keep working across
//! compatible upgrades. With the `ctgrind` feature, also builds the valgrind
//! client-request shim (`src/ffi/ctgrind.c`).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsesphr.so.0");
    }
    #[cfg(feature = "ctgrind")]
    {
        println!("cargo:rerun-if-changed=src/ffi/ctgrind.c");
        cc::Build::new()
            .file("src/ffi/ctgrind.c")
            .warnings(true)
            .compile("sesphr_ctgrind");
    }
}
