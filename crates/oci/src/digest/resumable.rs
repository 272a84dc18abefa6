//! SHA-256 whose running state can be saved and resumed in another process.
//!
//! `sha2` 0.10 keeps its state private, so this is the same construction as its `Sha256`
//! (a block buffer feeding `compress256`, which picks SHA-NI or the other CPU extensions at
//! run time) with the state in reach. The saved form is what any SHA-256 state is: the eight
//! words, the bytes hashed so far and the partial block they leave:
//!
//! ```text
//! [0..32)   the eight state words, big-endian
//! [32..40)  bytes hashed so far (u64, big-endian)
//! [40..)    the partial block: exactly (bytes hashed % 64) bytes
//! ```

use sha2::digest::block_buffer::{BlockBuffer, Eager};
use sha2::digest::typenum::U64;

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const INITIAL: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Bytes of the saved form before the partial block.
const HEADER: usize = 40;

/// A running SHA-256 (see the module docs).
#[derive(Clone)]
pub(crate) struct Sha256Resumable {
    state: [u32; 8],
    /// Whole blocks compressed into `state`.
    blocks: u64,
    buffer: BlockBuffer<U64, Eager>,
}

impl Default for Sha256Resumable {
    fn default() -> Self {
        Sha256Resumable {
            state: INITIAL,
            blocks: 0,
            buffer: BlockBuffer::default(),
        }
    }
}

impl Sha256Resumable {
    pub(crate) fn update(&mut self, data: &[u8]) {
        let (state, blocks) = (&mut self.state, &mut self.blocks);
        self.buffer.digest_blocks(data, |full| {
            *blocks = blocks.wrapping_add(full.len() as u64);
            sha2::compress256(state, full);
        });
    }

    /// Bytes hashed so far.
    pub(crate) fn len(&self) -> u64 {
        self.blocks
            .wrapping_mul(64)
            .wrapping_add(self.buffer.get_pos() as u64)
    }

    pub(crate) fn finish(mut self) -> [u8; 32] {
        let bits = self.len().wrapping_mul(8);
        let state = &mut self.state;
        self.buffer.len64_padding_be(bits, |block| {
            sha2::compress256(state, std::slice::from_ref(block));
        });
        let mut out = [0u8; 32];
        for (bytes, word) in out.chunks_exact_mut(4).zip(self.state) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// The saved form (see the module docs).
    pub(crate) fn save(&self) -> Vec<u8> {
        let partial = self.buffer.get_data();
        let mut out = Vec::with_capacity(HEADER + partial.len());
        for word in self.state {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out.extend_from_slice(&self.len().to_be_bytes());
        out.extend_from_slice(partial);
        out
    }

    /// Resumes from a saved form; `None` when `saved` is not one.
    pub(crate) fn resume(saved: &[u8]) -> Option<Sha256Resumable> {
        let (words, rest) = saved.split_at_checked(32)?;
        let (len, partial) = rest.split_at_checked(8)?;
        let len = u64::from_be_bytes(len.try_into().ok()?);
        if len % 64 != partial.len() as u64 {
            return None;
        }
        let mut state = [0u32; 8];
        for (word, bytes) in state.iter_mut().zip(words.chunks_exact(4)) {
            *word = u32::from_be_bytes(bytes.try_into().ok()?);
        }
        // An Eager buffer never holds a whole block: the partial block is under 64 bytes.
        let buffer = BlockBuffer::try_new(partial).ok()?;
        Some(Sha256Resumable {
            state,
            blocks: len / 64,
            buffer,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{Algorithm, Digest, DigestHasher};

    /// Deterministic pseudo-random numbers (no RNG dependency).
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn bytes(len: usize, rng: &mut XorShift) -> Vec<u8> {
        (0..len).map(|_| rng.next() as u8).collect()
    }

    #[test]
    fn saved_state_resumes_at_random_split_points() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for round in 0..200 {
            let len = match round % 4 {
                0 => (rng.next() % 64) as usize,
                1 => (rng.next() % 200) as usize,
                _ => (rng.next() % 20_000) as usize,
            };
            let data = bytes(len, &mut rng);
            // Split into up to four pieces; save and resume between each.
            let mut cuts: Vec<usize> = (0..3).map(|_| (rng.next() as usize) % (len + 1)).collect();
            cuts.sort_unstable();
            let mut h = DigestHasher::new(Algorithm::Sha256);
            let mut at = 0;
            for cut in cuts.into_iter().chain([len]) {
                h.update(&data[at..cut]);
                at = cut;
                let saved = h.save().unwrap();
                assert_eq!(saved.len(), HEADER + cut % 64);
                h = DigestHasher::resume(&saved).unwrap();
                assert_eq!(h.bytes_hashed(), cut as u64);
            }
            assert_eq!(
                h.finish(),
                Digest::compute(Algorithm::Sha256, &data),
                "len {len}"
            );
        }
    }

    #[test]
    fn sha512_has_no_saved_form() {
        assert!(DigestHasher::new(Algorithm::Sha512).save().is_none());
    }

    #[test]
    fn known_vectors() {
        let mut h = Sha256Resumable::default();
        h.update(b"abc");
        assert_eq!(
            hex::encode(h.finish()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(Sha256Resumable::default().finish()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn malformed_saved_states_are_refused() {
        let mut h = Sha256Resumable::default();
        h.update(&[7u8; 100]);
        let saved = h.save();
        assert!(Sha256Resumable::resume(&saved).is_some());
        // Too short, a partial block that does not match the length, or one byte too many.
        assert!(Sha256Resumable::resume(&saved[..39]).is_none());
        assert!(Sha256Resumable::resume(&saved[..saved.len() - 1]).is_none());
        let mut longer = saved.clone();
        longer.push(0);
        assert!(Sha256Resumable::resume(&longer).is_none());
        let mut whole_block = saved[..HEADER].to_vec();
        whole_block[32..40].copy_from_slice(&64u64.to_be_bytes());
        whole_block.extend_from_slice(&[0u8; 64]);
        assert!(Sha256Resumable::resume(&whole_block).is_none());
    }
}
