//! The C ABI of sesphr: `libsesphr.so` and `libsesphr.a`, declared in
//! `include/sesphr.h` (generated from [`abi`] by cbindgen). It uses only the
//! public API of the `sesphr` crate; Rust programs depend on `sesphr`
//! itself, and build none of this.
//!
//! The functions are in the `abi` module, whose documentation states the
//! conventions every function follows; the fuzz targets include that module
//! by path (`fuzz/src/lib.rs`), to call the ABI from Rust.
#![allow(unsafe_code)]

pub mod abi;
pub use abi::*;

#[cfg(test)]
mod freed_memory;
#[cfg(test)]
mod tests;
