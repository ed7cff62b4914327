//! Validated identifiers: identities of patients and users, portion labels,
//! record ids.

use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRng;

use crate::encoding::{Reader, hex};
use crate::error::{Error, Result};
use crate::rng::os_rng;

/// A patient's or user's identity: 1–255 bytes of UTF-8 with no control
/// character (no NUL, newline, escape, DEL or C1 control), so that it
/// prints whole in C strings and log lines.
///
/// ```
/// use sesphr::Identity;
/// let id = Identity::new("dr.house@clinic.example")?;
/// assert_eq!(id.as_str(), "dr.house@clinic.example");
/// assert!(Identity::new("").is_err());
/// assert!(Identity::new("dr\0evil").is_err());
/// assert!(Identity::new("line\nbreak").is_err());
/// # Ok::<(), sesphr::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity(String);

impl Identity {
    /// The longest identity, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Validates an identity.
    ///
    /// # Errors
    /// [`Error::InvalidIdentity`] if it is empty, longer than 255 bytes, or
    /// holds a control character.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        if s.is_empty() || s.len() > Self::MAX_LEN || s.chars().any(char::is_control) {
            return Err(Error::InvalidIdentity);
        }
        Ok(Self(s))
    }

    /// Validates an identity given as bytes.
    ///
    /// # Errors
    /// [`Error::InvalidIdentity`] if it is not UTF-8, not 1–255 bytes long,
    /// or holds a control character.
    pub fn from_utf8(bytes: &[u8]) -> Result<Self> {
        let s = core::str::from_utf8(bytes).map_err(|_| Error::InvalidIdentity)?;
        Self::new(s)
    }

    /// The identity as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({:?})", self.0)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Identity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl AsRef<str> for Identity {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A portion label: 1–64 bytes of `[a-z0-9_-]`.
///
/// Labels decide who may read what, so look-alike Unicode, upper case and
/// spaces are refused rather than normalized.
///
/// ```
/// use sesphr::PortionLabel;
/// let medical: PortionLabel = "medical".parse()?;
/// assert_eq!(medical.as_str(), "medical");
/// assert!(PortionLabel::new("Medical").is_err());
/// assert!(PortionLabel::new("medіcal").is_err()); // Cyrillic і
/// # Ok::<(), sesphr::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortionLabel(String);

impl PortionLabel {
    /// The longest label, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates a label.
    ///
    /// # Errors
    /// [`Error::InvalidLabel`] if it is empty, longer than 64 bytes, or has a
    /// byte outside `[a-z0-9_-]`.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        if Self::is_valid(s.as_bytes()) {
            Ok(Self(s))
        } else {
            Err(Error::InvalidLabel)
        }
    }

    /// Validates a label given as bytes.
    ///
    /// # Errors
    /// [`Error::InvalidLabel`] as for [`PortionLabel::new`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if !Self::is_valid(bytes) {
            return Err(Error::InvalidLabel);
        }
        let s = core::str::from_utf8(bytes).map_err(|_| Error::InvalidLabel)?;
        Ok(Self(s.to_owned()))
    }

    /// A label from a constant of this crate. Debug builds check it is
    /// valid; the constants are covered by tests.
    #[cfg(feature = "fhir")]
    pub(crate) fn from_static(s: &'static str) -> Self {
        debug_assert!(Self::is_valid(s.as_bytes()), "invalid constant label");
        Self(s.to_owned())
    }

    fn is_valid(b: &[u8]) -> bool {
        !b.is_empty()
            && b.len() <= Self::MAX_LEN
            && b.iter()
                .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
    }

    /// The label as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The label as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for PortionLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortionLabel({:?})", self.0)
    }
}

impl fmt::Display for PortionLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PortionLabel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// A record's 16-byte identifier. All portions of one record share it; it is
/// bound into every capsule so that a portion cannot be moved to another record.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId([u8; 16]);

impl RecordId {
    /// Length of a record id in bytes.
    pub const LEN: usize = 16;

    /// A fresh random record id from the OS RNG.
    pub fn random() -> Self {
        Self::random_with_rng(&mut os_rng())
    }

    /// A fresh random record id.
    pub fn random_with_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        Self(b)
    }

    /// A record id from its bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// A record id from a slice.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] unless the slice has 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let b: [u8; 16] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "record id",
            expected: Self::LEN,
            actual: bytes.len(),
        })?;
        Ok(Self(b))
    }

    /// The bytes of the record id.
    pub const fn to_bytes(&self) -> [u8; 16] {
        self.0
    }

    /// The bytes of the record id.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({self})")
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_bounds() {
        assert!(Identity::new("a").is_ok());
        assert!(Identity::new("x".repeat(255)).is_ok());
        assert!(matches!(
            Identity::new("x".repeat(256)),
            Err(Error::InvalidIdentity)
        ));
        assert!(matches!(Identity::new(""), Err(Error::InvalidIdentity)));
        assert!(matches!(
            Identity::from_utf8(&[0xff, 0xfe]),
            Err(Error::InvalidIdentity)
        ));
        // 85 three-byte characters = 255 bytes; one more is too long.
        assert!(Identity::new("€".repeat(85)).is_ok());
        assert!(Identity::new("€".repeat(86)).is_err());
    }

    #[test]
    fn label_charset() {
        for ok in ["a", "lab", "x-ray_2", "0", &"a".repeat(64)] {
            assert!(PortionLabel::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Lab",
            "lab report",
            "lab/1",
            "é",
            "lab.",
            &"a".repeat(65),
            "ｌａｂ",
        ] {
            assert!(
                matches!(PortionLabel::new(bad), Err(Error::InvalidLabel)),
                "{bad}"
            );
        }
        assert!(PortionLabel::from_bytes(b"\xc0\x80").is_err());
    }

    #[test]
    fn record_id_slice() -> Result<()> {
        assert!(RecordId::from_slice(&[0u8; 15]).is_err());
        assert!(RecordId::from_slice(&[0u8; 17]).is_err());
        let r = RecordId::from_slice(&[7u8; 16])?;
        assert_eq!(r.to_bytes(), [7u8; 16]);
        assert_eq!(r.to_string(), "07".repeat(16));
        Ok(())
    }
}

/// The identifier of an access request (16 random bytes, chosen by the SRS).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId([u8; 16]);

impl RequestId {
    /// Length in bytes.
    pub const LEN: usize = 16;

    /// A fresh random identifier.
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut os_rng(), &mut b);
        Self(b)
    }

    /// From its bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// From a slice of exactly 16 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] otherwise.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::unframed("request id", bytes);
        let b = r.array()?;
        r.finish()?;
        Ok(Self(b))
    }

    /// Its bytes.
    pub const fn to_bytes(&self) -> [u8; 16] {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}
