//! Streaming over Python file objects: a portion sealed from any object
//! with `read(n)` into any object with `write(b)`, and opened back, in
//! bounded memory (one chunk of input and its output at a time). The
//! Python calls hold the GIL; the cryptography between them runs without
//! it.

use std::io::Write as _;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

use sesphr::{Error as RsError, PortionHeader, PortionOpener};

use crate::Py as _;

/// How much is read from the source per call: 1 MiB.
const CHUNK: usize = 1 << 20;

/// `src.read(n)`: up to `n` bytes, empty at the end.
fn read_some(src: &Bound<'_, PyAny>, n: usize) -> PyResult<PyBackedBytes> {
    Ok(src.call_method1("read", (n,))?.extract::<PyBackedBytes>()?)
}

/// Exactly `n` bytes of `src` (a short read is asked again).
fn read_exact(src: &Bound<'_, PyAny>, n: usize) -> PyResult<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let got = read_some(src, n - out.len())?;
        if got.is_empty() {
            return Err(crate::core_err(RsError::InvalidLength {
                what: "portion header",
                expected: n,
                actual: out.len(),
            }));
        }
        out.extend_from_slice(&got);
    }
    Ok(out)
}

/// `dst.write(b)` until all of `b` is written (raw streams may take less).
fn write_all(dst: &Bound<'_, PyAny>, mut b: &[u8]) -> PyResult<()> {
    let py = dst.py();
    while !b.is_empty() {
        let ret = dst.call_method1("write", (PyBytes::new(py, b),))?;
        // `None` (a non-blocking raw stream that took nothing) or a count.
        let n: usize = ret.extract::<Option<usize>>()?.unwrap_or(0);
        if n == 0 {
            return Err(crate::core_err(RsError::Io(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "the destination took no bytes",
            ))));
        }
        b = b.get(n..).unwrap_or_default();
    }
    Ok(())
}

/// Reads a portion header from the front of `src`.
fn read_header(src: &Bound<'_, PyAny>) -> PyResult<PortionHeader> {
    let mut head = read_exact(src, PortionHeader::PREFIX_LEN)?;
    let len = PortionHeader::len_from_prefix(&head).py()?;
    let rest = read_exact(src, len.saturating_sub(head.len()))?;
    head.extend_from_slice(&rest);
    PortionHeader::from_bytes(&head).py()
}

/// Seals everything `src` yields as a new record of the portion whose
/// public key is given, writing the sealed portion to `dst`; returns the
/// header (what the SRS needs).
#[pyfunction]
#[pyo3(signature = (portion_public_key, src, dst, record_id = None, created_at = None))]
pub(crate) fn seal_stream<'py>(
    py: Python<'py>,
    portion_public_key: &[u8],
    src: &Bound<'py, PyAny>,
    dst: &Bound<'py, PyAny>,
    record_id: Option<&[u8]>,
    created_at: Option<u64>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (key, id, at) = crate::seal_args(portion_public_key, record_id, created_at)?;
    let mut w = py
        .detach(|| sesphr::PortionWriter::new(&key, id, at, Vec::with_capacity(CHUNK + 4096)))
        .py()?;
    let header = w.header().to_bytes();
    loop {
        let sealed = std::mem::take(w.get_mut());
        write_all(dst, &sealed)?;
        let chunk = read_some(src, CHUNK)?;
        if chunk.is_empty() {
            break;
        }
        let data: &[u8] = &chunk;
        py.detach(|| w.write_all(data))
            .map_err(RsError::from)
            .py()?;
    }
    let last = py.detach(|| w.finish()).py()?;
    write_all(dst, &last)?;
    Ok(PyBytes::new(py, &header))
}

/// Opens the sealed portion `src` yields into `dst` with the opener `make`
/// builds from its header; returns how many plaintext bytes were written.
/// Only chunks that authenticated are written; an error (a tampered or
/// truncated portion) can come after some were: discard `dst` then.
pub(crate) fn open_stream_with<'py, T: Send>(
    py: Python<'py>,
    src: &Bound<'py, PyAny>,
    dst: &Bound<'py, PyAny>,
    make: impl FnOnce(&PortionHeader) -> Result<(PortionOpener, T), RsError> + Send,
) -> PyResult<(u64, T)> {
    let header = read_header(src)?;
    let (mut opener, extra) = py.detach(|| make(&header)).py()?;
    let mut out = Vec::with_capacity(CHUNK + 64);
    let mut total = 0u64;
    loop {
        let chunk = read_some(src, CHUNK)?;
        let data: &[u8] = &chunk;
        if data.is_empty() {
            py.detach(|| opener.finish(&mut out)).py()?;
        } else {
            py.detach(|| opener.push(data, &mut out)).py()?;
        }
        write_all(dst, &out)?;
        total += out.len() as u64;
        out.clear();
        if data.is_empty() {
            return Ok((total, extra));
        }
    }
}
