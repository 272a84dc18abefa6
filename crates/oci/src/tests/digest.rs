use crate::{Algorithm, Digest, DigestHasher, ErrorCode};

const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const SHA512_EMPTY: &str = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
                            47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";
const SHA512_ABC: &str = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                          2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

#[test]
fn known_vectors() {
    assert_eq!(Digest::compute(Algorithm::Sha256, b"").hex(), SHA256_EMPTY);
    assert_eq!(Digest::compute(Algorithm::Sha256, b"abc").hex(), SHA256_ABC);
    assert_eq!(Digest::compute(Algorithm::Sha512, b"").hex(), SHA512_EMPTY);
    assert_eq!(Digest::compute(Algorithm::Sha512, b"abc").hex(), SHA512_ABC);
    let d = Digest::compute(Algorithm::Sha512, b"abc");
    assert_eq!(d.to_string(), format!("sha512:{SHA512_ABC}"));
    assert_eq!(d.algorithm(), Algorithm::Sha512);
    assert!(d.verify(b"abc"));
    assert!(!d.verify(b"abd"));
}

#[test]
fn sha512_million_a() {
    // FIPS 180-2 long-message vector, fed in uneven chunks.
    let mut h = DigestHasher::new(Algorithm::Sha512);
    let chunk = vec![b'a'; 7919];
    let mut left = 1_000_000usize;
    while left > 0 {
        let n = left.min(chunk.len());
        h.update(&chunk[..n]);
        left -= n;
    }
    assert_eq!(h.bytes_hashed(), 1_000_000);
    assert_eq!(
        h.finish().hex(),
        "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb\
         de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b"
    );
}

#[test]
fn hasher_incremental_equals_one_shot() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    for alg in Algorithm::ALL {
        for split in [0usize, 1, 63, 64, 65, 4096, 99_999, 100_000] {
            let mut h = DigestHasher::new(alg);
            h.update(&data[..split]);
            let snapshot = h.clone();
            h.update(&data[split..]);
            assert_eq!(h.bytes_hashed(), data.len() as u64);
            assert_eq!(
                h.finish(),
                Digest::compute(alg, &data),
                "{alg} split {split}"
            );
            // the clone is an independent snapshot of the prefix
            assert_eq!(snapshot.finish(), Digest::compute(alg, &data[..split]));
        }
    }
}

#[test]
fn parse_valid() {
    let s = format!("sha256:{SHA256_ABC}");
    let d: Digest = s.parse().unwrap();
    assert_eq!(d.algorithm(), Algorithm::Sha256);
    assert_eq!(d.hex(), SHA256_ABC);
    assert_eq!(d.to_string(), s);
    let s = format!("sha512:{SHA512_ABC}");
    assert_eq!(s.parse::<Digest>().unwrap().to_string(), s);
}

#[test]
fn parse_invalid() {
    let upper = format!("sha256:{}", SHA256_ABC.to_uppercase());
    let short = format!("sha256:{}", &SHA256_ABC[..63]);
    let long = format!("sha256:{SHA256_ABC}0");
    let sha512_with_256_len = format!("sha512:{SHA256_ABC}");
    let non_hex = format!("sha256:{}g", &SHA256_ABC[..63]);
    let upper_alg = format!("SHA256:{SHA256_ABC}");
    let two_colons = format!("sha256:{SHA256_ABC}:x");
    let spaced = format!(" sha256:{SHA256_ABC}");
    let bad_sep = format!("sha256+:{SHA256_ABC}");
    let cases = [
        upper.as_str(),
        short.as_str(),
        long.as_str(),
        sha512_with_256_len.as_str(),
        non_hex.as_str(),
        upper_alg.as_str(),
        two_colons.as_str(),
        spaced.as_str(),
        bad_sep.as_str(),
        "sha256:",
        ":abc",
        "sha256",
        "",
        SHA256_ABC,
    ];
    for c in cases {
        let err = c.parse::<Digest>().unwrap_err();
        assert_eq!(err.code, ErrorCode::DigestInvalid, "{c:?}");
        assert_eq!(err.code.status(), 400);
    }
}

#[test]
fn unsupported_algorithms_are_rejected_as_unsupported() {
    for c in [
        format!("blake3:{SHA256_ABC}"),
        format!("sha384:{SHA256_ABC}"),
        format!("sha256+b64u:{SHA256_ABC}"),
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8".to_owned(),
    ] {
        let err = c.parse::<Digest>().unwrap_err();
        assert_eq!(err.code, ErrorCode::DigestInvalid, "{c}");
        assert_eq!(err.detail.unwrap()["reason"], "unsupported", "{c}");
        assert!(err.message.contains("unsupported"), "{c}");
    }
}

#[test]
fn hostile_input_is_truncated_in_message() {
    let huge = format!("sha256:{}", "A".repeat(100_000));
    let err = huge.parse::<Digest>().unwrap_err();
    assert!(err.message.len() < 500);
}

#[test]
fn from_parts_and_algorithm_parse() {
    assert!(Digest::from_parts(Algorithm::Sha256, SHA256_ABC).is_ok());
    assert!(Digest::from_parts(Algorithm::Sha512, SHA256_ABC).is_err());
    assert_eq!("sha512".parse::<Algorithm>().unwrap(), Algorithm::Sha512);
    assert!("md5".parse::<Algorithm>().is_err());
    assert_eq!(Algorithm::Sha256.hex_len(), 64);
    assert_eq!(Algorithm::Sha512.hex_len(), 128);
    assert_eq!(Algorithm::Sha512.as_str(), "sha512");
}

#[test]
fn serde_as_string_and_ordering() {
    let d = Digest::compute(Algorithm::Sha256, b"abc");
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(json, format!("\"sha256:{SHA256_ABC}\""));
    let back: Digest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d);
    assert!(serde_json::from_str::<Digest>("\"sha256:abc\"").is_err());
    let e = Digest::compute(Algorithm::Sha256, b"");
    let mut v = vec![d.clone(), e.clone()];
    v.sort();
    assert_eq!(v, vec![d, e]); // "ba78..." < "e3b0..."
}

#[test]
fn sha256_digest_is_held_inline() {
    // The store's index keeps several digests per manifest: a sha256 digest is its 32 bytes
    // plus the variant, with nothing on the heap.
    assert!(std::mem::size_of::<Digest>() <= 40);
    assert_eq!(Digest::compute(Algorithm::Sha256, b"abc").bytes().len(), 32);
    assert_eq!(Digest::compute(Algorithm::Sha512, b"abc").bytes().len(), 64);
}

#[test]
fn digests_order_as_their_text() {
    let mut digests: Vec<Digest> = (0..200u32)
        .flat_map(|i| {
            let data = i.to_le_bytes();
            [
                Digest::compute(Algorithm::Sha256, &data),
                Digest::compute(Algorithm::Sha512, &data),
            ]
        })
        .collect();
    digests.sort();
    let texts: Vec<String> = digests.iter().map(ToString::to_string).collect();
    let mut sorted = texts.clone();
    sorted.sort();
    assert_eq!(texts, sorted);
    for d in &digests {
        let back: Digest = d.to_string().parse().unwrap();
        assert_eq!(&back, d);
        assert_eq!(back.hex().len(), d.algorithm().hex_len());
    }
}
