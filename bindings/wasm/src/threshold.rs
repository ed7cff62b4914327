//! Threshold re-encryption on the patient's and the reader's side: the
//! patient splits a re-encryption key among SRS nodes and signs the share
//! grant; the reader opens from any t valid answers of the nodes.

use wasm_bindgen::prelude::*;

use sesphr::ShareCommitments;
use sesphr::consent::SignedGrant;

use crate::stream::Opener;
use crate::{Js as _, KeyPair, ReKey, array32};

/// A re-encryption key split among `n` nodes (`ReKey.split`): the public
/// commitments and one secret share per node.
#[wasm_bindgen]
pub struct ReKeySplit {
    commitments: Vec<u8>,
    shares: Vec<sesphr::ReKeyShare>,
}

#[wasm_bindgen]
impl ReKeySplit {
    /// The commitments (for `PatientKeys.signShareGrant` and the reader's
    /// `ThresholdOpener`).
    #[wasm_bindgen(getter)]
    pub fn commitments(&self) -> Vec<u8> {
        self.commitments.clone()
    }

    /// How many shares (n).
    #[wasm_bindgen(getter)]
    pub fn count(&self) -> u32 {
        u32::try_from(self.shares.len()).unwrap_or(u32::MAX)
    }

    /// The share of node `node` (1 to n), encoded, for that node only
    /// (secret).
    pub fn share(&self, node: u8) -> Result<Vec<u8>, JsValue> {
        let i = usize::from(node).checked_sub(1);
        let s = i
            .and_then(|i| self.shares.get(i))
            .ok_or_else(|| crate::js_error("no share with this node index", "invalid_argument"))?;
        Ok(s.to_bytes().to_vec())
    }

    /// Node `node`'s re-encryption of a sealed portion (or its header), with
    /// its proof: what that node answers (for tests and demos; a node does
    /// this in its SRS).
    #[wasm_bindgen(js_name = reencryptAs)]
    pub fn reencrypt_as(&self, node: u8, sealed_or_header: &[u8]) -> Result<Vec<u8>, JsValue> {
        let share = sesphr::ReKeyShare::from_bytes(&self.share(node)?).js()?;
        let h = crate::header_of(sealed_or_header).js()?;
        share
            .reencrypt_with_proof(h.verify().js()?)
            .map(|rc| rc.to_bytes())
            .js()
    }
}

#[wasm_bindgen]
impl ReKey {
    /// Splits the key among `nodes` SRS nodes so that any `threshold` of
    /// them re-encrypt together and fewer learn nothing.
    pub fn split(&self, threshold: u8, nodes: u8) -> Result<ReKeySplit, JsValue> {
        let (c, shares) = self.0.split(threshold, nodes).js()?;
        Ok(ReKeySplit {
            commitments: c.to_bytes(),
            shares,
        })
    }
}

/// The reader's side of a threshold grant, made once from the patient's
/// signed share grant and its commitments (checked against the patient's
/// consent key).
#[wasm_bindgen]
pub struct ThresholdOpener(sesphr::ThresholdOpener);

/// `nodes[i]` answered `answers[i]`.
fn pairs(nodes: &[u8], answers: Vec<js_sys::Uint8Array>) -> Result<Vec<(u8, Vec<u8>)>, JsValue> {
    if nodes.len() != answers.len() {
        return Err(crate::js_error(
            "nodes and answers differ in length",
            "invalid_argument",
        ));
    }
    Ok(nodes
        .iter()
        .zip(answers)
        .map(|(n, a)| (*n, a.to_vec()))
        .collect())
}

#[wasm_bindgen]
impl ThresholdOpener {
    /// The opener of `user` for the share grant `signedGrant` of the split
    /// `commitments`, verified under the patient's `consentKey`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        user: &KeyPair,
        signed_grant: &[u8],
        commitments: &[u8],
        consent_key: &[u8],
    ) -> Result<ThresholdOpener, JsValue> {
        let g = SignedGrant::from_bytes(signed_grant).js()?;
        let c = ShareCommitments::from_bytes(commitments).js()?;
        let k =
            sesphr::consent::decode_verifying_key(&array32("consent key", consent_key)?).js()?;
        let v = g.verify_commitments(&k, &c).js()?;
        sesphr::ThresholdOpener::new(&user.0, &v).js().map(Self)
    }

    /// Opens `sealed` from the nodes' answers (`nodes[i]` answered
    /// `answers[i]`) when at least t are valid; throws `too_few_shares`
    /// otherwise.
    pub fn open(
        &self,
        sealed: &[u8],
        nodes: &[u8],
        answers: Vec<js_sys::Uint8Array>,
    ) -> Result<Vec<u8>, JsValue> {
        let given = pairs(nodes, answers)?;
        let refs: Vec<(u8, &[u8])> = given.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        let s = sesphr::SealedPortion::from_bytes(sealed).js()?;
        self.0
            .open(&s, sesphr::Shares::FromNodes(&refs))
            .map(sesphr::ThresholdOpened::into_plaintext)
            .js()
    }

    /// An `Opener` of a sealed portion pushed in pieces, from these
    /// answers (its `used` and `badNodes` are set once the header arrived).
    pub fn opener(
        &self,
        nodes: &[u8],
        answers: Vec<js_sys::Uint8Array>,
    ) -> Result<Opener, JsValue> {
        Ok(Opener::threshold(self.0.clone(), pairs(nodes, answers)?))
    }
}
