//! The registry's rows: what each kind holds, its key and body encodings,
//! and the conversion to and from the authenticated form a store keeps.
//!
//! Row kinds are numbered in the order a registry must load them (a portion
//! names its patient, a grant its portion and user).

use crate::encoding::Reader;
use crate::hash::encode_parts;
use crate::ids::{Identity, PortionLabel};
use crate::model::{GrantKey, GrantTerms, Purpose, Role, Scope, part};
use crate::pq::PQ_PUBLIC_KEY_LEN;
use crate::reencrypt::ServingKey;
use crate::srs::secrets::SrsKeys;
use crate::srs::types::SrsError;
use crate::store::StoredRow;

pub(crate) const USER: u8 = 1;
pub(crate) const PATIENT: u8 = 2;
pub(crate) const PORTION: u8 = 3;
pub(crate) const GRANT: u8 = 4;
pub(crate) const REQUEST: u8 = 5;
pub(crate) const CONSENT: u8 = 6;
pub(crate) const DISCLOSED: u8 = 7;
pub(crate) const PQ_KEY: u8 = 8;

/// The key of the one `PQ_KEY` row.
const PQ_KEY_ROW: &[u8] = b"srs";

/// A registered user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UserRow {
    pub(crate) identity: Identity,
    pub(crate) role: Role,
    pub(crate) public_key: [u8; 32],
    pub(crate) registered_at: u64,
    pub(crate) removed_at: Option<u64>,
    /// The user's ML-KEM-768 encapsulation key, for hybrid headers (none
    /// until registered; rows written before it existed end without it).
    pub(crate) pq_key: Option<Box<[u8; PQ_PUBLIC_KEY_LEN]>>,
}

/// The SRS's current post-quantum key version, and since when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PqKeyRow {
    pub(crate) version: u32,
    pub(crate) since: u64,
}

impl PqKeyRow {
    fn body(&self) -> Vec<u8> {
        let mut v = self.version.to_be_bytes().to_vec();
        put_u64(&mut v, self.since);
        v
    }

    /// The row's image.
    pub(crate) fn image(&self, generation: u64) -> RowImage {
        RowImage {
            kind: PQ_KEY,
            key: PQ_KEY_ROW.to_vec(),
            body: self.body(),
            generation,
        }
    }
}

/// A registered patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PatientRow {
    pub(crate) identity: Identity,
    pub(crate) registered_at: u64,
    /// The consent public key (none for patients registered before signed
    /// consent existed).
    pub(crate) consent_key: Option<[u8; 32]>,
}

/// An access request, pending or answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestRow {
    pub(crate) id: [u8; 16],
    pub(crate) patient: Identity,
    pub(crate) user: Identity,
    pub(crate) label: PortionLabel,
    pub(crate) purpose: Purpose,
    pub(crate) justification: String,
    pub(crate) requested_at: u64,
    pub(crate) answer: Option<(bool, u64)>,
}

/// A portion public key of a patient (the point as registered; it was
/// validated then and comes back authenticated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortionRow {
    pub(crate) patient: Identity,
    pub(crate) label: PortionLabel,
    pub(crate) epoch: u32,
    pub(crate) point: [u8; 32],
    pub(crate) registered_at: u64,
}

/// A grant: active with its key, or a revocation tombstone.
pub(crate) struct GrantRow {
    pub(crate) key: GrantKey,
    pub(crate) terms: GrantTerms,
    pub(crate) state: GrantState,
    /// The last signed grant or revocation of this key the SRS accepted.
    pub(crate) consent: Consented,
}

/// Which signed objects of one grant key the SRS accepted last: their date
/// (0: none signed) and the nonces of every one with that date. A new
/// object must be dated later, or the same second with a nonce not seen:
/// a replayed or older grant or revocation is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Consented {
    pub(crate) at: u64,
    pub(crate) nonces: Vec<[u8; 16]>,
}

impl Consented {
    /// Most objects accepted for one grant key within one second (a
    /// patient's client does not sign more; the list resets each second).
    const MAX_SAME_SECOND: usize = 255;

    /// What this becomes once an object dated `at` with `nonce` is
    /// accepted; `None` if it must be refused as a replay (or an older one).
    pub(crate) fn admit(&self, at: u64, nonce: [u8; 16]) -> Option<Self> {
        if at > self.at {
            return Some(Self {
                at,
                nonces: vec![nonce],
            });
        }
        if at == self.at
            && !self.nonces.contains(&nonce)
            && self.nonces.len() < Self::MAX_SAME_SECOND
        {
            let mut nonces = self.nonces.clone();
            nonces.push(nonce);
            return Some(Self { at, nonces });
        }
        None
    }
}

/// The consent order of one (patient, label, user) across every key epoch
/// (SPEC §7.5): the signed revocations accepted last, and the date at or
/// before which every grant of the triple is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConsentRow {
    pub(crate) patient: Identity,
    pub(crate) label: PortionLabel,
    pub(crate) user: Identity,
    /// The last signed revocations accepted (date and nonces).
    pub(crate) revoked: Consented,
    /// A grant dated at or before this is refused: the latest accepted
    /// revocation's date, raised to the date of every grant it ended.
    pub(crate) bound: u64,
}

impl ConsentRow {
    /// The row's key: the triple, length-prefixed.
    pub(crate) fn key_of(patient: &Identity, label: &PortionLabel, user: &Identity) -> Vec<u8> {
        let mut k = Vec::with_capacity(64);
        encode_parts(
            &mut k,
            &[patient.as_bytes(), label.as_bytes(), user.as_bytes()],
        );
        k
    }

    pub(crate) fn body(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(25 + 16 * self.revoked.nonces.len());
        put_u64(&mut v, self.bound);
        put_u64(&mut v, self.revoked.at);
        v.push(u8::try_from(self.revoked.nonces.len()).unwrap_or(u8::MAX));
        for n in &self.revoked.nonces {
            v.extend_from_slice(n);
        }
        v
    }
}

/// How many disclosures of a patient the log holds: the authenticated
/// count an accounting of disclosures is checked against (nothing omitted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DisclosedRow {
    pub(crate) patient: Identity,
    /// Disclosures ever logged.
    pub(crate) count: u64,
    /// Of which archived away (with their entries).
    pub(crate) archived: u64,
    /// The sequence number of the last one (0: none).
    pub(crate) last_seq: u64,
}

impl DisclosedRow {
    pub(crate) fn body(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        put_u64(&mut v, self.count);
        put_u64(&mut v, self.archived);
        put_u64(&mut v, self.last_seq);
        v
    }
}

pub(crate) enum GrantState {
    Active(ServingKey),
    Revoked(u64),
}

/// One row of the registry.
pub(crate) enum Row {
    User(UserRow),
    Patient(PatientRow),
    Portion(PortionRow),
    Grant(GrantRow),
    Request(RequestRow),
    Consent(ConsentRow),
    Disclosed(DisclosedRow),
    PqKey(PqKeyRow),
}

/// A row's authenticated fields without its secret: enough to recompute its
/// MAC (and so its share of the registry digest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RowImage {
    pub(crate) kind: u8,
    pub(crate) key: Vec<u8>,
    pub(crate) body: Vec<u8>,
    pub(crate) generation: u64,
}

fn put_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn put_opt(v: &mut Vec<u8>, x: Option<u64>) {
    match x {
        None => v.push(0),
        Some(t) => {
            v.push(1);
            put_u64(v, t);
        }
    }
}

fn get_opt(r: &mut Reader<'_>) -> Option<Option<u64>> {
    match r.byte().ok()? {
        0 => Some(None),
        1 => Some(Some(r.u64().ok()?)),
        _ => None,
    }
}

pub(crate) fn terms_body(
    terms: &GrantTerms,
    revoked_at: Option<u64>,
    consent: &Consented,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(40);
    put_opt(
        &mut v,
        match terms.scope {
            Scope::AllRecords => None,
            Scope::Since(t) => Some(t),
        },
    );
    put_opt(&mut v, terms.expiry);
    put_u64(&mut v, terms.granted_at);
    put_opt(&mut v, revoked_at);
    // Grants of before signed consent end here (their bodies are unchanged).
    if terms.emergency || consent.at != 0 {
        v.push(u8::from(terms.emergency));
        put_u64(&mut v, consent.at);
        // At most MAX_SAME_SECOND (255) nonces.
        v.push(u8::try_from(consent.nonces.len()).unwrap_or(u8::MAX));
        for n in &consent.nonces {
            v.extend_from_slice(n);
        }
    }
    v
}

pub(crate) fn patient_body(p: &PatientRow) -> Vec<u8> {
    let mut b = Vec::with_capacity(40);
    put_u64(&mut b, p.registered_at);
    if let Some(k) = &p.consent_key {
        b.extend_from_slice(k);
    }
    b
}

pub(crate) fn request_body(r: &RequestRow) -> Vec<u8> {
    let mut b = Vec::with_capacity(96 + r.justification.len());
    encode_parts(
        &mut b,
        &[
            r.patient.as_bytes(),
            r.user.as_bytes(),
            r.label.as_bytes(),
            r.justification.as_bytes(),
        ],
    );
    b.push(r.purpose.code());
    put_u64(&mut b, r.requested_at);
    match r.answer {
        None => b.push(0),
        Some((granted, t)) => {
            b.push(if granted { 1 } else { 2 });
            put_u64(&mut b, t);
        }
    }
    b
}

pub(crate) fn user_body(u: &UserRow) -> Vec<u8> {
    let mut v = Vec::with_capacity(80);
    encode_parts(&mut v, &[u.role.as_str().as_bytes()]);
    v.extend_from_slice(&u.public_key);
    put_u64(&mut v, u.registered_at);
    put_opt(&mut v, u.removed_at);
    if let Some(k) = &u.pq_key {
        v.extend_from_slice(&k[..]);
    }
    v
}

/// The associated data that binds a sealed key to its row version.
fn secret_aad(key: &[u8], body: &[u8], generation: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + body.len() + 64);
    encode_parts(
        &mut v,
        &[b"grant-secret", key, body, &generation.to_be_bytes()],
    );
    v
}

impl Row {
    /// Kind, key and body.
    pub(crate) fn image(&self, generation: u64) -> RowImage {
        let (kind, key, body) = match self {
            Self::User(u) => (USER, u.identity.as_bytes().to_vec(), user_body(u)),
            Self::Patient(p) => (PATIENT, p.identity.as_bytes().to_vec(), patient_body(p)),
            Self::Request(r) => (REQUEST, r.id.to_vec(), request_body(r)),
            Self::Disclosed(d) => (DISCLOSED, d.patient.as_bytes().to_vec(), d.body()),
            Self::PqKey(p) => (PQ_KEY, PQ_KEY_ROW.to_vec(), p.body()),
            Self::Consent(c) => (
                CONSENT,
                ConsentRow::key_of(&c.patient, &c.label, &c.user),
                c.body(),
            ),
            Self::Portion(p) => {
                let mut b = Vec::with_capacity(96);
                encode_parts(
                    &mut b,
                    &[
                        p.patient.as_bytes(),
                        p.label.as_bytes(),
                        &p.epoch.to_be_bytes(),
                    ],
                );
                put_u64(&mut b, p.registered_at);
                (PORTION, p.point.to_vec(), b)
            }
            Self::Grant(g) => {
                let revoked = match g.state {
                    GrantState::Active(_) => None,
                    GrantState::Revoked(t) => Some(t),
                };
                (
                    GRANT,
                    g.key.to_bytes(),
                    terms_body(&g.terms, revoked, &g.consent),
                )
            }
        };
        RowImage {
            kind,
            key,
            body,
            generation,
        }
    }

    /// The authenticated form: MAC over the image, the secret sealed to it.
    /// Returns it with the row's share of the registry digest.
    pub(crate) fn seal(
        &self,
        generation: u64,
        keys: &SrsKeys,
        rng: &mut crate::rng::OsRng,
    ) -> Result<(StoredRow, curve25519_dalek::scalar::Scalar), SrsError> {
        let img = self.image(generation);
        let mac = keys.row_mac(img.kind, &img.key, generation, &img.body)?;
        let secret = match self {
            Self::Grant(GrantRow {
                state: GrantState::Active(k),
                ..
            }) => Some(keys.seal(
                k.to_bytes().as_ref(),
                &secret_aad(&img.key, &img.body, generation),
                rng,
            )?),
            _ => None,
        };
        let share = keys.share(&mac)?;
        Ok((
            StoredRow {
                kind: img.kind,
                key: img.key,
                generation,
                body: img.body,
                secret,
                mac,
            },
            share,
        ))
    }

    /// Checks a stored row's MAC, opens its secret and decodes it. Returns
    /// it with its share of the registry digest.
    pub(crate) fn open(
        stored: &StoredRow,
        keys: &SrsKeys,
    ) -> Result<(Self, curve25519_dalek::scalar::Scalar), SrsError> {
        use subtle::ConstantTimeEq;
        const BAD: SrsError = SrsError::Tampered("registry row");
        let mac = keys.row_mac(stored.kind, &stored.key, stored.generation, &stored.body)?;
        if !bool::from(mac.ct_eq(&stored.mac)) {
            return Err(BAD);
        }
        let row = decode(stored, keys).ok_or(BAD)??;
        Ok((row, keys.share(&mac)?))
    }
}

impl Row {
    /// Decodes a row whose authenticity was established otherwise (a row
    /// image inside a sealed registry snapshot): no MAC is checked.
    ///
    /// # Errors
    /// [`SrsError::Tampered`] if it does not decode.
    pub(crate) fn decode_authenticated(
        stored: &StoredRow,
        keys: &SrsKeys,
    ) -> Result<Self, SrsError> {
        decode(stored, keys).ok_or(SrsError::Tampered("registry row"))?
    }
}

/// `None`: the fields do not decode; `Some(Err)`: the secret does not open.
fn decode(s: &StoredRow, keys: &SrsKeys) -> Option<Result<Row, SrsError>> {
    if s.kind != GRANT && s.secret.is_some() {
        return None;
    }
    let mut r = Reader::unframed("registry row", &s.body);
    let row = match s.kind {
        USER => {
            let role = core::str::from_utf8(part(&mut r).ok()?)
                .ok()?
                .parse()
                .ok()?;
            let public_key = r.array().ok()?;
            let registered_at = r.u64().ok()?;
            let removed_at = get_opt(&mut r)?;
            let pq_key = if r.at_end() {
                None
            } else {
                Some(Box::new(r.array().ok()?))
            };
            Row::User(UserRow {
                identity: Identity::from_utf8(&s.key).ok()?,
                role,
                public_key,
                registered_at,
                removed_at,
                pq_key,
            })
        }
        PATIENT => Row::Patient(PatientRow {
            identity: Identity::from_utf8(&s.key).ok()?,
            registered_at: r.u64().ok()?,
            consent_key: if r.at_end() {
                None
            } else {
                Some(r.array().ok()?)
            },
        }),
        REQUEST => {
            let patient = Identity::from_utf8(part(&mut r).ok()?).ok()?;
            let user = Identity::from_utf8(part(&mut r).ok()?).ok()?;
            let label = PortionLabel::from_bytes(part(&mut r).ok()?).ok()?;
            let justification = String::from_utf8(part(&mut r).ok()?.to_vec()).ok()?;
            let purpose = Purpose::from_code(r.byte().ok()?).ok()?;
            let requested_at = r.u64().ok()?;
            let answer = match r.byte().ok()? {
                0 => None,
                1 => Some((true, r.u64().ok()?)),
                2 => Some((false, r.u64().ok()?)),
                _ => return None,
            };
            Row::Request(RequestRow {
                id: s.key.as_slice().try_into().ok()?,
                patient,
                user,
                label,
                purpose,
                justification,
                requested_at,
                answer,
            })
        }
        DISCLOSED => {
            let row = DisclosedRow {
                patient: Identity::from_utf8(&s.key).ok()?,
                count: r.u64().ok()?,
                archived: r.u64().ok()?,
                last_seq: r.u64().ok()?,
            };
            if row.archived > row.count || (row.count == 0) != (row.last_seq == 0) {
                return None;
            }
            Row::Disclosed(row)
        }
        CONSENT => {
            let mut k = Reader::unframed("registry row", &s.key);
            let patient = Identity::from_utf8(part(&mut k).ok()?).ok()?;
            let label = PortionLabel::from_bytes(part(&mut k).ok()?).ok()?;
            let user = Identity::from_utf8(part(&mut k).ok()?).ok()?;
            k.finish().ok()?;
            let bound = r.u64().ok()?;
            let at = r.u64().ok()?;
            let n = usize::from(r.byte().ok()?);
            let nonces = (0..n).map(|_| r.array().ok()).collect::<Option<Vec<_>>>()?;
            if bound < at {
                return None;
            }
            Row::Consent(ConsentRow {
                patient,
                label,
                user,
                revoked: Consented { at, nonces },
                bound,
            })
        }
        PORTION => {
            let patient = Identity::from_utf8(part(&mut r).ok()?).ok()?;
            let label = PortionLabel::from_bytes(part(&mut r).ok()?).ok()?;
            let epoch = u32::from_be_bytes(part(&mut r).ok()?.try_into().ok()?);
            Row::Portion(PortionRow {
                patient,
                label,
                epoch,
                point: s.key.as_slice().try_into().ok()?,
                registered_at: r.u64().ok()?,
            })
        }
        GRANT => {
            let key = GrantKey::from_bytes(&s.key).ok()?;
            let scope = get_opt(&mut r)?.map_or(Scope::AllRecords, Scope::Since);
            let expiry = get_opt(&mut r)?;
            let granted_at = r.u64().ok()?;
            let revoked = get_opt(&mut r)?;
            let (emergency, consent) = if r.at_end() {
                (false, Consented::default())
            } else {
                let e = match r.byte().ok()? {
                    0 => false,
                    1 => true,
                    _ => return None,
                };
                let at = r.u64().ok()?;
                let n = usize::from(r.byte().ok()?);
                let nonces = (0..n).map(|_| r.array().ok()).collect::<Option<Vec<_>>>()?;
                // One encoding per row: the extension only when it says something.
                if !e && at == 0 {
                    return None;
                }
                (e, Consented { at, nonces })
            };
            let state = match (revoked, &s.secret) {
                (Some(t), None) => GrantState::Revoked(t),
                (None, Some(sealed)) => {
                    let aad = secret_aad(&s.key, &s.body, s.generation);
                    let opened = match keys.open(sealed, &aad) {
                        Ok(b) => b,
                        Err(e) => return Some(Err(e)),
                    };
                    GrantState::Active(ServingKey::from_authenticated_bytes(&opened).ok()?)
                }
                _ => return None,
            };
            Row::Grant(GrantRow {
                key,
                terms: GrantTerms {
                    scope,
                    expiry,
                    granted_at,
                    emergency,
                },
                state,
                consent,
            })
        }
        PQ_KEY if s.key == PQ_KEY_ROW => Row::PqKey(PqKeyRow {
            version: r.u32().ok()?,
            since: r.u64().ok()?,
        }),
        _ => return None,
    };
    r.finish().ok()?;
    Some(Ok(row))
}
