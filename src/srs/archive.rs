//! Archived audit segments: a stretch of the chain between two signed
//! checkpoints, written before it is pruned from the store and verifiable on
//! its own with the SRS's public key.
//!
//! Format: `"SPAS" ‖ version ‖ start_seq ‖ start_hash ‖ flag ‖ [start
//! checkpoint] ‖ count ‖ count × (len (u32) ‖ entry encoding) ‖ end
//! checkpoint`, integers big-endian. The start checkpoint is present unless
//! the segment starts at the genesis (`start_seq = 0`).

use std::io::{Read, Write};

use ed25519_dalek::VerifyingKey;

use crate::model::{AuditEntry, Checkpoint};
use crate::srs::chain::{chain_hash, genesis_hash, walk};
use crate::srs::secrets::checkpoint_is_signed_by;
use crate::srs::types::SrsError;
use crate::store::{Store, StoreError};

const MAGIC: &[u8; 4] = b"SPAS";
const VERSION: u8 = 1;

/// What a verified segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The first entry's sequence number.
    pub first_seq: u64,
    /// The last entry's sequence number (the end checkpoint's).
    pub last_seq: u64,
    /// The end checkpoint.
    pub end: Checkpoint,
}

fn io(e: std::io::Error) -> SrsError {
    SrsError::Store(StoreError::with_source(
        "writing or reading an audit segment",
        e,
    ))
}

pub(crate) fn write_segment(
    store: &dyn Store,
    start: (u64, [u8; 32]),
    start_cp: Option<&Checkpoint>,
    end: &Checkpoint,
    out: &mut dyn Write,
) -> Result<u64, SrsError> {
    let mut head = MAGIC.to_vec();
    head.push(VERSION);
    head.extend_from_slice(&start.0.to_be_bytes());
    head.extend_from_slice(&start.1);
    match start_cp {
        Some(cp) => {
            head.push(1);
            head.extend_from_slice(&cp.to_bytes());
        }
        None => head.push(0),
    }
    head.extend_from_slice(&(end.seq - start.0).to_be_bytes());
    out.write_all(&head).map_err(io)?;
    let mut n = 0;
    let last = walk(store, start.0, start.1, end.seq, &mut |rec, _| {
        let b = rec.entry.to_bytes();
        let len = u32::try_from(b.len()).map_err(|_| SrsError::Tampered("audit entry"))?;
        out.write_all(&len.to_be_bytes()).map_err(io)?;
        out.write_all(&b).map_err(io)?;
        n += 1;
        Ok(())
    })?;
    if last != end.chain_hash {
        return Err(SrsError::AuditChainBroken { seq: end.seq });
    }
    out.write_all(&end.to_bytes()).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(n)
}

fn read_exact<const N: usize>(r: &mut dyn Read) -> Result<[u8; N], SrsError> {
    let mut b = [0u8; N];
    r.read_exact(&mut b).map_err(|_| malformed())?;
    Ok(b)
}

fn malformed() -> SrsError {
    SrsError::Malformed(crate::Error::Malformed {
        what: "audit segment",
    })
}

fn read_checkpoint(r: &mut dyn Read) -> Result<Checkpoint, SrsError> {
    // Magic and version say the length (version 1: no tree root).
    let mut b = read_exact::<5>(r)?.to_vec();
    let len = if b.get(4) == Some(&1) {
        Checkpoint::LEN_V1
    } else {
        Checkpoint::LEN
    };
    b.resize(len, 0);
    r.read_exact(b.get_mut(5..).ok_or_else(malformed)?)
        .map_err(|_| malformed())?;
    Checkpoint::from_bytes(&b).map_err(SrsError::Malformed)
}

/// Verifies an archived segment read from `segment` against the SRS's
/// checkpoint key, streaming (one entry in memory at a time): the start is
/// the genesis or a checkpoint signed by `key`, every entry links to the one
/// before, and the last one is the signed end checkpoint's.
///
/// # Errors
/// [`SrsError::Malformed`] if it is not a segment; [`SrsError::InvalidCheckpoint`]
/// if a checkpoint is not signed by `key`; [`SrsError::AuditChainBroken`] at
/// the first entry that does not link.
pub fn verify_segment(segment: &mut dyn Read, key: &VerifyingKey) -> Result<SegmentInfo, SrsError> {
    if &read_exact::<4>(segment)? != MAGIC || read_exact::<1>(segment)? != [VERSION] {
        return Err(malformed());
    }
    let start_seq = u64::from_be_bytes(read_exact(segment)?);
    let start_hash: [u8; 32] = read_exact(segment)?;
    match read_exact::<1>(segment)? {
        [0] if start_seq == 0 && start_hash == genesis_hash() => {}
        [1] => {
            let cp = read_checkpoint(segment)?;
            if !checkpoint_is_signed_by(&cp, key) {
                return Err(SrsError::InvalidCheckpoint);
            }
            if cp.seq != start_seq || cp.chain_hash != start_hash {
                return Err(malformed());
            }
        }
        _ => return Err(malformed()),
    }
    let count = u64::from_be_bytes(read_exact(segment)?);
    let mut prev = start_hash;
    let mut seq = start_seq;
    for _ in 0..count {
        let len = u32::from_be_bytes(read_exact(segment)?) as usize;
        if len > 1 << 20 {
            return Err(malformed());
        }
        let mut b = vec![0u8; len];
        segment.read_exact(&mut b).map_err(|_| malformed())?;
        let entry = AuditEntry::from_bytes(&b).map_err(SrsError::Malformed)?;
        if entry.seq != seq + 1 {
            return Err(SrsError::AuditChainBroken { seq: seq + 1 });
        }
        prev = chain_hash(&prev, &entry);
        seq += 1;
    }
    let end = read_checkpoint(segment)?;
    if !checkpoint_is_signed_by(&end, key) {
        return Err(SrsError::InvalidCheckpoint);
    }
    if end.seq != seq || end.chain_hash != prev {
        return Err(SrsError::AuditChainBroken { seq });
    }
    let mut rest = [0u8; 1];
    if segment.read(&mut rest).map_err(io)? != 0 {
        return Err(malformed());
    }
    Ok(SegmentInfo {
        first_seq: start_seq + 1,
        last_seq: seq,
        end,
    })
}
