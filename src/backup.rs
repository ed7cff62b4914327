//! Key backups (SPEC §3.4): the one encoding in which secrets leave the
//! library for the host's storage or a sheet of paper — a patient's master
//! key, a user's secret key, an SRS's escrow seed — each carrying a check
//! value, so that a corrupted or mistyped backup is refused
//! ([`Error::BadChecksum`]) instead of restoring a *different* key (and
//! with it the loss of every record the real one opens).
//!
//! Two forms of the same bytes:
//! - binary: `"SPKB" ‖ 0x01 ‖ kind ‖ body ‖ check`, where `check` is the
//!   first 16 bytes of SHA-256 over the length-prefixed tag
//!   `sesphr/v1/key-backup` and every byte before it;
//! - text, for paper: Bech32m (BIP-350) of the binary form under a
//!   human-readable part naming the kind (`sesphr-patient`, `sesphr-secret`,
//!   `sesphr-escrow`). Its own checksum finds any four mistyped characters
//!   and tells where a transcription went wrong; the binary check inside
//!   stays the final word.
//!
//! ```
//! # use sesphr::{Identity, PatientKeys};
//! let keys = PatientKeys::generate(Identity::new("patient-1")?);
//! let paper = keys.to_backup_text();
//! assert!(paper.starts_with("sesphr-patient1"));
//! let restored = PatientKeys::from_backup_text(&paper)?;
//! assert_eq!(*restored.master_bytes(), *keys.master_bytes());
//!
//! // One character mistyped: refused, never a different key.
//! let mut typo = paper.to_string();
//! let last = typo.pop().unwrap();
//! typo.push(if last == 'q' { 'p' } else { 'q' });
//! assert!(PatientKeys::from_backup_text(&typo).is_err());
//! # Ok::<(), sesphr::Error>(())
//! ```

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::ct::public;
use crate::encoding::{Reader, frame, magic};
use crate::error::{Error, Result};
use crate::hash::tag;

/// Bytes of the check value.
pub(crate) const CHECK_LEN: usize = 16;

/// What a backup holds (its `kind` byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A patient's master key and identity: `x_P (32) ‖ short(id)`.
    Patient = 1,
    /// A user's secret key: the scalar `x_U` (32, canonical, nonzero).
    Secret = 2,
    /// An SRS's escrow seed (32).
    Escrow = 3,
}

impl Kind {
    fn hrp(self) -> &'static str {
        match self {
            Self::Patient => "sesphr-patient",
            Self::Secret => "sesphr-secret",
            Self::Escrow => "sesphr-escrow",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Patient => "patient key backup",
            Self::Secret => "secret key backup",
            Self::Escrow => "escrow seed backup",
        }
    }
}

fn check_value(covered: &[u8]) -> [u8; CHECK_LEN] {
    let mut h = Sha256::new();
    h.update((tag::KEY_BACKUP.len() as u64).to_be_bytes());
    h.update(tag::KEY_BACKUP);
    h.update(covered);
    let d = h.finalize();
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&d[..CHECK_LEN]);
    out
}

/// The binary backup of `body` as `kind`.
pub(crate) fn seal(kind: Kind, body: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(frame(magic::KEY_BACKUP, 6 + body.len() + CHECK_LEN));
    v.push(kind as u8);
    v.extend_from_slice(body);
    let check = check_value(&v);
    v.extend_from_slice(&check);
    v
}

/// The body of a binary backup of `kind`. Decoding order: length (at least
/// magic, version, kind and check), magic, version, check value, kind.
pub(crate) fn open(kind: Kind, bytes: &[u8]) -> Result<&[u8]> {
    let what = kind.what();
    let mut r = Reader::framed(what, bytes, magic::KEY_BACKUP)?;
    let Some(covered_len) = bytes.len().checked_sub(CHECK_LEN).filter(|n| *n > 5) else {
        return Err(Error::InvalidLength {
            what,
            expected: 6 + CHECK_LEN,
            actual: bytes.len(),
        });
    };
    let (covered, check) = bytes.split_at(covered_len);
    // The verdict is public (a backup is intact or it is not); the check
    // value itself, a hash of the secret, is compared in constant time.
    let intact = bool::from(check_value(covered).ct_eq(check));
    if !public(intact, "key-backup-check-verdict") {
        return Err(Error::BadChecksum { what });
    }
    let found = r.byte()?;
    if found != kind as u8 {
        return Err(Error::Malformed {
            what: "a key backup of another kind",
        });
    }
    covered.get(6..).ok_or(Error::Malformed { what })
}

/// The text form of a binary backup.
pub(crate) fn to_text(kind: Kind, binary: &[u8]) -> Zeroizing<String> {
    // The human-readable parts are valid constants and a backup is far
    // below Bech32m's 1023-character limit, so neither step can fail; if
    // one ever did, the text would be empty, which no import accepts.
    let text = Hrp::parse(kind.hrp())
        .ok()
        .and_then(|hrp| bech32::encode_lower::<Bech32m>(hrp, binary).ok())
        .unwrap_or_default();
    Zeroizing::new(text)
}

/// The binary backup inside a text backup of `kind`. Whitespace (line
/// breaks, groups written apart on paper) is ignored; letters may be all
/// upper or all lower case.
pub(crate) fn from_text(kind: Kind, text: &str) -> Result<Zeroizing<Vec<u8>>> {
    let what = kind.what();
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    let parsed =
        CheckedHrpstring::new::<Bech32m>(&compact).map_err(|_| Error::BadChecksum { what })?;
    if !parsed.hrp().as_str().eq_ignore_ascii_case(kind.hrp()) {
        return Err(Error::Malformed {
            what: "a key backup of another kind",
        });
    }
    Ok(Zeroizing::new(parsed.byte_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flip_and_truncation_is_refused() {
        let sealed = seal(Kind::Escrow, &[7; 32]);
        assert_eq!(open(Kind::Escrow, &sealed).unwrap(), &[7; 32]);
        for i in 0..sealed.len() * 8 {
            let mut b = sealed.to_vec();
            b[i / 8] ^= 1 << (i % 8);
            assert!(open(Kind::Escrow, &b).is_err(), "flip {i}");
        }
        for n in 0..sealed.len() {
            assert!(open(Kind::Escrow, &sealed[..n]).is_err(), "cut {n}");
        }
        let mut longer = sealed.to_vec();
        longer.push(0);
        assert!(open(Kind::Escrow, &longer).is_err());
        assert!(matches!(
            open(Kind::Secret, &sealed),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn text_round_trips_and_refuses_another_kind_and_typos() {
        let sealed = seal(Kind::Secret, &[1; 32]);
        let text = to_text(Kind::Secret, &sealed);
        assert!(text.starts_with("sesphr-secret1"));
        assert_eq!(*from_text(Kind::Secret, &text).unwrap(), *sealed);
        let spaced: String = text
            .chars()
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(*from_text(Kind::Secret, &spaced).unwrap(), *sealed);
        assert_eq!(
            *from_text(Kind::Secret, &text.to_uppercase()).unwrap(),
            *sealed
        );
        assert!(from_text(Kind::Patient, &text).is_err());
        let data_start = text.find('1').unwrap() + 1;
        for i in data_start..text.len() {
            let mut t: Vec<char> = text.chars().collect();
            t[i] = if t[i] == 'q' { 'p' } else { 'q' };
            let t: String = t.into_iter().collect();
            assert!(matches!(
                from_text(Kind::Secret, &t),
                Err(Error::BadChecksum { .. })
            ));
        }
    }
}
