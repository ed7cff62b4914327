//! The consent steps a patient's and a user's clients take, in one process
//! with the SRS: for tests, examples and benchmarks that exercise the SRS
//! rather than consent itself (included with `#[path]` outside `tests/`).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use chacha20::ChaCha20Rng;
use sesphr::rand_core::SeedableRng;
use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel};

/// The consent steps a patient's and a user's clients take, for tests that
/// exercise the SRS rather than consent itself.
pub trait Consenting {
    /// Registers the patient with signed proofs for these portion keys.
    fn add_patient(
        &self,
        p: &PatientKeys,
        portions: &[(PortionLabel, u32)],
    ) -> Result<(), sesphr::srs::SrsError>;
    /// Registers a user with their proof of possession.
    fn add_user(
        &self,
        id: &Identity,
        role: sesphr::srs::Role,
        kp: &KeyPair,
    ) -> Result<(), sesphr::srs::SrsError>;
    /// The patient signs a grant for `rekey` (its epoch found from its
    /// portion key) and the SRS installs it.
    fn give(
        &self,
        p: &PatientKeys,
        label: &PortionLabel,
        user: &Identity,
        rekey: sesphr::ReKey,
        scope: sesphr::srs::Scope,
        expiry: Option<u64>,
    ) -> Result<(), sesphr::srs::SrsError>;
    /// The patient signs a revocation and the SRS carries it out.
    fn take(
        &self,
        p: &PatientKeys,
        label: &PortionLabel,
        user: &Identity,
    ) -> Result<sesphr::consent::RevocationReceipt, sesphr::srs::SrsError>;
    /// An administrator removes the user.
    fn drop_user(&self, user: &Identity) -> Result<(), sesphr::srs::SrsError>;
}

/// An RNG never seeded alike twice in one test process (nonces).
pub fn fresh_rng() -> ChaCha20Rng {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    ChaCha20Rng::from_seed(seed)
}

/// The epoch of `p`'s portion `label` that `rekey` comes from (0 if none).
pub fn epoch_of(p: &PatientKeys, label: &PortionLabel, rekey: &sesphr::ReKey) -> u32 {
    (0..16)
        .find(|&e| p.portion_public(label, e).key() == rekey.portion_key())
        .unwrap_or(0)
}

/// The administrator of the tests.
pub fn admin() -> sesphr::consent::Actor {
    sesphr::consent::Actor::new(
        Identity::new("compliance-officer").unwrap(),
        sesphr::srs::Role::Admin,
        "left the organization",
    )
    .unwrap()
}

impl Consenting for sesphr::srs::Srs {
    fn add_patient(
        &self,
        p: &PatientKeys,
        portions: &[(PortionLabel, u32)],
    ) -> Result<(), sesphr::srs::SrsError> {
        self.register_patient(&sesphr::consent::PatientRegistration::new(p, portions)?)
    }

    fn add_user(
        &self,
        id: &Identity,
        role: sesphr::srs::Role,
        kp: &KeyPair,
    ) -> Result<(), sesphr::srs::SrsError> {
        self.register_user(id, role, kp.public(), &kp.prove_possession(id))
    }

    fn give(
        &self,
        p: &PatientKeys,
        label: &PortionLabel,
        user: &Identity,
        rekey: sesphr::ReKey,
        scope: sesphr::srs::Scope,
        expiry: Option<u64>,
    ) -> Result<(), sesphr::srs::SrsError> {
        let options = sesphr::consent::GrantOptions {
            scope,
            expiry,
            issued_at: Some(self.now()),
            ..Default::default()
        };
        let signed = p.sign_grant(label, epoch_of(p, label, &rekey), user, &rekey, &options)?;
        self.grant(&signed, rekey)
    }

    fn take(
        &self,
        p: &PatientKeys,
        label: &PortionLabel,
        user: &Identity,
    ) -> Result<sesphr::consent::RevocationReceipt, sesphr::srs::SrsError> {
        self.revoke(&p.sign_revocation_with_rng(label, user, self.now(), &mut fresh_rng())?)
    }

    fn drop_user(&self, user: &Identity) -> Result<(), sesphr::srs::SrsError> {
        self.remove_user(user, &admin())
    }
}
