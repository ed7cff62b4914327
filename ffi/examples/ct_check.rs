//! The constant-time check: runs key generation, portion key derivation,
//! re-key generation, sealing, owner open, re-encryption and delegatee open
//! with every secret marked *undefined* for valgrind memcheck (the ctgrind
//! technique). Memcheck then reports each branch and each memory index that
//! depends on a secret; values that are public by design are declassified at
//! the named points listed in the README ("Constant time").
//!
//! ```text
//! cargo build -p sesphr-ffi --profile ctgrind --features ctgrind --example ct_check
//! valgrind --error-exitcode=1 target/ctgrind/examples/ct_check
//! ```
//!
//! `ct_check --must-report` branches on a secret on purpose: valgrind must
//! report it (exit non-zero), which shows the marks reach memcheck.
//!
//! The valgrind client requests are a C shim (`ffi/ctgrind.c`, built and
//! linked into this example by `ffi/build.rs`); the library's
//! declassification points reach them through `sesphr::ctgrind::set_marker`.
//!
//! Prints only operation names and counts, never key material.
#![allow(unsafe_code)]

use std::convert::Infallible;

use chacha20::ChaCha20Rng;
use sesphr::ctgrind::{poison, set_marker};
use sesphr::rand_core::{SeedableRng, TryCryptoRng, TryRng};
use sesphr::{
    Identity, KeyPair, PatientKeys, PortionLabel, PqSecretKey, ReKey, RecordId, Result,
    SealedPortion, SrsPqSecretKey, ThresholdOpener,
};

/// An RNG whose every output is marked secret: keys, nonces and ephemeral
/// scalars drawn from it are undefined to memcheck from the start.
struct SecretRng(ChaCha20Rng);

impl TryRng for SecretRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> core::result::Result<u32, Infallible> {
        let mut v = self.0.try_next_u32()?;
        poison(&mut v);
        Ok(v)
    }
    fn try_next_u64(&mut self) -> core::result::Result<u64, Infallible> {
        let mut v = self.0.try_next_u64()?;
        poison(&mut v);
        Ok(v)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Infallible> {
        self.0.try_fill_bytes(dst)?;
        poison(dst);
        Ok(())
    }
}

impl TryCryptoRng for SecretRng {}

unsafe extern "C" {
    fn sesphr_ctgrind_poison(p: *const u8, n: usize);
    fn sesphr_ctgrind_unpoison(p: *const u8, n: usize);
    fn sesphr_ctgrind_running() -> core::ffi::c_uint;
}

/// The marker the library calls at every mark: a valgrind client request.
fn mark(p: *const u8, n: usize, defined: bool) {
    // SAFETY: the requests only change valgrind's shadow state for the `n`
    // bytes at `p` (the library passes a live value's own memory); outside
    // valgrind they are a few no-op instructions.
    unsafe {
        if defined {
            sesphr_ctgrind_unpoison(p, n);
        } else {
            sesphr_ctgrind_poison(p, n);
        }
    }
}

fn running_on_valgrind() -> bool {
    // SAFETY: a client request without arguments.
    unsafe { sesphr_ctgrind_running() != 0 }
}

fn main() -> Result<()> {
    set_marker(mark);
    if !running_on_valgrind() {
        eprintln!(
            "ct_check: not under valgrind; run: valgrind --error-exitcode=1 {}",
            std::env::args().next().unwrap_or_default()
        );
    }
    let mut rng = SecretRng(ChaCha20Rng::from_seed([7; 32]));
    if std::env::args().any(|a| a == "--must-report") {
        let mut secret = [0u8; 1];
        rng.try_fill_bytes(&mut secret).ok();
        // A branch on a secret: memcheck must report it.
        if secret[0] & 1 == 1 {
            println!("must-report: odd");
        } else {
            println!("must-report: even");
        }
        return Ok(());
    }
    let label = PortionLabel::new("lab")?;
    let record = RecordId::from_bytes([3; 16]);

    // Key generation.
    let patient = PatientKeys::generate_with_rng(Identity::new("patient-1")?, &mut rng);
    let user = KeyPair::generate_with_rng(&mut rng);
    println!("key generation: patient keys, user key pair");

    // Key import: a secret key and the patient's keys from their encodings.
    let mut user_secret = *user.secret().to_bytes();
    poison(&mut user_secret);
    let user = KeyPair::from_secret_bytes(&user_secret)?;
    let mut patient_bytes = patient.to_bytes();
    // The framing and the identity are public; the master key, bytes 6..38
    // ("SPKB" ‖ version ‖ kind ‖ master ‖ identity ‖ check), is the secret.
    if let Some(master) = patient_bytes.get_mut(6..38) {
        poison(master);
    }
    let patient = PatientKeys::from_bytes(&patient_bytes)?;
    println!("key import: user key pair, patient keys");

    // Portion key derivation.
    let portion_secret = patient.portion_secret(&label, 1);
    let portion_public = patient.portion_public(&label, 1);
    println!("portion key derivation: secret and public key");

    // Sealing a secret plaintext.
    let mut plaintext = b"HbA1c 6.9 %; eGFR 58 mL/min/1.73m2".repeat(8);
    poison(plaintext.as_mut_slice());
    let sealed =
        SealedPortion::seal_with_rng(&portion_public, record, 1_700_000_000, &plaintext, &mut rng)?;
    println!("seal: {} bytes", sealed.to_bytes().len());

    // Owner open.
    let opened = sealed.open_as_owner(&portion_secret)?;
    println!("owner open: {} bytes", opened.len());

    // Re-key generation.
    let rekey = ReKey::generate_with_rng(&portion_secret, user.public(), &mut rng);
    println!("re-key generation");

    // Re-encryption (the SRS's work, with the secret re-key), with and
    // without a proof.
    let header = sealed.header().verify()?;
    let recapsule = rekey.reencrypt(header)?;
    let proved = rekey.reencrypt_with_proof_with_rng(sealed.header().verify()?, &mut rng)?;
    println!("re-encryption: plain and with proof");

    // Delegatee open.
    let by_user = sealed.open_as_delegatee(&user, &recapsule)?;
    let by_user_proved = sealed.open_as_delegatee(&user, &proved)?;
    println!(
        "delegatee open: {} and {} bytes",
        by_user.len(),
        by_user_proved.len()
    );

    // A forged body is refused (the tag check is a declassification point).
    let mut forged = sealed.to_bytes();
    if let Some(last) = forged.last_mut() {
        *last ^= 1;
    }
    let refused = SealedPortion::from_bytes(&forged)?
        .open_as_owner(&portion_secret)
        .is_err();
    println!("forged body refused: {refused}");

    // Hybrid (post-quantum) portions: ML-KEM-768 keys from secret seeds,
    // sealing, owner open, the SRS's re-wrap, delegatee open.
    let hybrid_user = user
        .clone()
        .with_pq(PqSecretKey::generate_with_rng(&mut rng));
    let srs = SrsPqSecretKey::new(1, PqSecretKey::generate_with_rng(&mut rng));
    let key = portion_secret.hybrid_public(&srs.public())?;
    println!("hybrid key generation: user, SRS, portion");
    let sealed = SealedPortion::seal_with_rng(&key, record, 1_700_000_000, &plaintext, &mut rng)?;
    println!("hybrid seal: {} bytes", sealed.to_bytes().len());
    let opened = sealed.open_as_owner(&portion_secret)?;
    println!("hybrid owner open: {} bytes", opened.len());
    let user_pq = hybrid_user.pq_public().ok_or(sesphr::Error::PqKeyMissing)?;
    let recapsule = rekey.reencrypt_hybrid_with_rng(
        sealed.header().verify()?,
        &srs,
        user_pq,
        true,
        &mut rng,
    )?;
    println!("hybrid re-encryption with proof");
    let by_user = sealed.open_as_delegatee(&hybrid_user, &recapsule)?;
    println!("hybrid delegatee open: {} bytes", by_user.len());

    // Under a 2-of-3 threshold SRS: the re-key and σ split among the
    // nodes, each node's re-encryption with its share, the robust open.
    let nodes = (0..3)
        .map(|_| SrsPqSecretKey::new(1, PqSecretKey::generate_with_rng(&mut rng)))
        .collect::<Vec<_>>();
    let publics = nodes.iter().map(SrsPqSecretKey::public).collect::<Vec<_>>();
    let split_key = portion_secret.hybrid_public_split(2, &publics)?;
    let sealed =
        SealedPortion::seal_with_rng(&split_key, record, 1_700_000_000, &plaintext, &mut rng)?;
    println!(
        "hybrid seal, σ split 2 of 3: {} bytes",
        sealed.to_bytes().len()
    );
    let (commitments, shares) = rekey.split_with_rng(2, 3, &mut rng)?;
    println!("re-key split 2 of 3");
    let mut answers = Vec::new();
    for (share, node) in shares.iter().zip(&nodes).skip(1) {
        answers.push(share.reencrypt_hybrid_with_rng(
            sealed.header().verify()?,
            node,
            user_pq,
            true,
            &mut rng,
        )?);
    }
    println!("node re-encryption with proof: {} answers", answers.len());
    let opener = ThresholdOpener::new_unauthenticated(&hybrid_user, &commitments)?;
    let opened = opener.open(&sealed, &answers)?;
    println!("threshold open: {} bytes", opened.plaintext().len());
    Ok(())
}
