//! Sealing and opening in pieces, for data that arrives as a stream
//! (`ReadableStream` chunks, `fetch` bodies, file slices): each `push`
//! takes any number of bytes and returns what is ready, so memory stays
//! bounded by one chunk (64 KiB of plaintext) whatever the size. With a
//! `TransformStream`, `readable.pipeThrough(...)` seals or opens on the fly
//! (see `tests/stream.test.cjs`).

use wasm_bindgen::prelude::*;

use sesphr::{Error, PortionHeader};

use crate::{Js as _, KeyPair, PatientKeys};

/// Seals a portion pushed in pieces: `header` first (also what the SRS
/// needs), then what each `push` returns, then what `finish` returns — in
/// that order, they are the sealed portion.
#[wasm_bindgen]
pub struct Sealer {
    header: Vec<u8>,
    writer: Option<sesphr::PortionWriter<Vec<u8>>>,
}

#[wasm_bindgen]
impl Sealer {
    /// A new record of the portion whose public key is given. `recordId`:
    /// 16 bytes, or empty for a random one; `createdAt`: seconds, or 0 for
    /// now.
    #[wasm_bindgen(constructor)]
    pub fn new(
        portion_public_key: &[u8],
        record_id: &[u8],
        created_at: f64,
    ) -> Result<Sealer, JsValue> {
        let (key, id, at) = crate::seal_args(portion_public_key, record_id, created_at)?;
        let mut writer = sesphr::PortionWriter::new(&key, id, at, Vec::new()).js()?;
        let header = std::mem::take(writer.get_mut());
        Ok(Self {
            header,
            writer: Some(writer),
        })
    }

    /// The header: the first bytes of the sealed portion.
    #[wasm_bindgen(getter)]
    pub fn header(&self) -> Vec<u8> {
        self.header.clone()
    }

    /// Seals `plaintext` (any length); returns the sealed bytes ready so
    /// far (possibly none).
    pub fn push(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, JsValue> {
        let w = self.writer.as_mut().ok_or_else(finished)?;
        std::io::Write::write_all(w, plaintext)
            .map_err(Error::from)
            .js()?;
        Ok(std::mem::take(w.get_mut()))
    }

    /// Seals the last chunk; returns the last sealed bytes. The sealer is
    /// spent.
    pub fn finish(&mut self) -> Result<Vec<u8>, JsValue> {
        self.writer.take().ok_or_else(finished)?.finish().js()
    }
}

fn finished() -> JsValue {
    crate::js_error("the stream is already finished", "invalid_state")
}

/// How an opener gets its key once the header has arrived.
enum Key {
    Owner(sesphr::PatientKeys),
    Delegatee(sesphr::KeyPair, sesphr::ReCapsule),
    Threshold(sesphr::ThresholdOpener, Vec<(u8, Vec<u8>)>),
}

/// Opens a sealed portion pushed in pieces, header first: each `push`
/// returns the plaintext of every chunk that authenticated, `finish` the
/// last one. Only `finish` without an error means the portion was whole
/// and authentic: on an error, discard what was returned.
#[wasm_bindgen]
pub struct Opener {
    key: Option<Key>,
    pending: Vec<u8>,
    opener: Option<sesphr::PortionOpener>,
    /// Nodes used and liars, for a threshold open.
    report: Option<(Vec<u8>, Vec<u8>)>,
}

impl Opener {
    fn with(key: Key) -> Self {
        Self {
            key: Some(key),
            pending: Vec::new(),
            opener: None,
            report: None,
        }
    }

    pub(crate) fn threshold(opener: sesphr::ThresholdOpener, answers: Vec<(u8, Vec<u8>)>) -> Self {
        Self::with(Key::Threshold(opener, answers))
    }

    /// The opener for `header`, from the key given at construction.
    fn start(&mut self, header: &PortionHeader) -> Result<sesphr::PortionOpener, Error> {
        match self.key.take() {
            Some(Key::Owner(p)) => {
                let c = header.context();
                sesphr::PortionOpener::for_owner(header, &p.portion_secret(c.label(), c.epoch()))
            }
            Some(Key::Delegatee(user, rc)) => {
                let o = sesphr::DelegateeOpener::for_recapsule(&user, header, &rc);
                sesphr::PortionOpener::for_delegatee(header, &o, &rc)
            }
            Some(Key::Threshold(t, answers)) => {
                let given: Vec<(u8, &[u8])> =
                    answers.iter().map(|(n, b)| (*n, b.as_slice())).collect();
                let (o, report) = t.chunk_opener(header, sesphr::Shares::FromNodes(&given))?;
                self.report = Some((report.used().to_vec(), report.bad_nodes().to_vec()));
                Ok(o)
            }
            None => Err(Error::Malformed {
                what: "opener already used",
            }),
        }
    }
}

#[wasm_bindgen]
impl Opener {
    /// The patient's opener (any portion and epoch of theirs).
    #[wasm_bindgen(js_name = forOwner)]
    pub fn for_owner(patient: &PatientKeys) -> Opener {
        Self::with(Key::Owner(patient.0.clone()))
    }

    /// A granted user's opener, with the re-capsule the SRS returned for
    /// this portion's header.
    #[wasm_bindgen(js_name = forDelegatee)]
    pub fn for_delegatee(user: &KeyPair, recapsule: &[u8]) -> Result<Opener, JsValue> {
        let rc = sesphr::ReCapsule::from_bytes(recapsule).js()?;
        Ok(Self::with(Key::Delegatee(user.0.clone(), rc)))
    }

    /// Feeds sealed bytes (header first, any length); returns the plaintext
    /// of every chunk that authenticated so far.
    pub fn push(&mut self, sealed: &[u8]) -> Result<Vec<u8>, JsValue> {
        let mut out = Vec::new();
        let body = match self.opener.as_mut() {
            Some(o) => {
                o.push(sealed, &mut out).js()?;
                return Ok(out);
            }
            None => {
                self.pending.extend_from_slice(sealed);
                if self.pending.len() < PortionHeader::PREFIX_LEN {
                    return Ok(out);
                }
                let len = PortionHeader::len_from_prefix(&self.pending).js()?;
                if self.pending.len() < len {
                    return Ok(out);
                }
                let body = self.pending.split_off(len);
                let header = PortionHeader::from_bytes(&self.pending).js()?;
                self.pending = Vec::new();
                self.opener = Some(self.start(&header).js()?);
                body
            }
        };
        if let Some(o) = self.opener.as_mut() {
            o.push(&body, &mut out).js()?;
        }
        Ok(out)
    }

    /// The end of the sealed bytes: returns the last plaintext. Throws if
    /// the portion was cut short (or never got its header) or altered.
    pub fn finish(&mut self) -> Result<Vec<u8>, JsValue> {
        let mut out = Vec::new();
        match self.opener.as_mut() {
            Some(o) => o.finish(&mut out).js()?,
            None => {
                return Err(crate::err(Error::InvalidLength {
                    what: "portion header",
                    expected: PortionHeader::PREFIX_LEN.max(self.pending.len() + 1),
                    actual: self.pending.len(),
                }));
            }
        }
        Ok(out)
    }

    /// For a threshold opener, once the header has arrived: the nodes whose
    /// shares were combined.
    #[wasm_bindgen(getter)]
    pub fn used(&self) -> Vec<u8> {
        self.report
            .as_ref()
            .map(|r| r.0.clone())
            .unwrap_or_default()
    }

    /// For a threshold opener, once the header has arrived: the nodes that
    /// answered wrongly.
    #[wasm_bindgen(getter, js_name = badNodes)]
    pub fn bad_nodes(&self) -> Vec<u8> {
        self.report
            .as_ref()
            .map(|r| r.1.clone())
            .unwrap_or_default()
    }
}
