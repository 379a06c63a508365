//! The loaders never panic, whatever the bytes: random bytes and mutations of real files.

use burnfit::Checkpoint;
use burnfit::checkpoint::Format;
use proptest::prelude::*;

use crate::common::autograd_fixture;

fn seeds() -> Vec<(Format, Vec<u8>)> {
    let checkpoint = Checkpoint::load(&autograd_fixture()).unwrap();
    let mut with_meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(autograd_fixture()).unwrap()).unwrap();
    with_meta["burnfit"] = serde_json::json!({
        "format_version": 1, "crate_version": "0.1.0", "backend": "ndarray", "step": 1000,
        "seed": 42, "final_loss": 0.25, "config": {"steps": 1000, "lr": 0.01}
    });
    vec![
        (Format::Json, std::fs::read(autograd_fixture()).unwrap()),
        (Format::Json, serde_json::to_vec(&with_meta).unwrap()),
        (Format::Bpk, checkpoint.to_bytes(Format::Bpk).unwrap()),
        (
            Format::Safetensors,
            checkpoint
                .clone()
                .without_optimizer()
                .to_bytes(Format::Safetensors)
                .unwrap(),
        ),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: usize,
        byte: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
    /// Swap a JSON-ish token for another: numbers, brackets, keys.
    Token {
        at: usize,
        token: &'static str,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Remove { at, len }),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "-1",
                "1e39",
                "NaN",
                "null",
                "[]",
                "{}",
                "[[",
                "\"\\u0001w\"",
                "99999999999999999999",
                "-0.0",
                "\"dim\":[]",
                "\"v\":2",
                "\"data\":[]",
                "true",
                "\u{1}",
                "\"format_version\":2",
            ])
        )
            .prop_map(|(at, token)| Mutation::Token { at, token }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match m {
        Mutation::Flip { at: i, byte } if !bytes.is_empty() => {
            let i = at(*i, bytes.len());
            bytes[i] ^= byte;
        }
        Mutation::Truncate { at: i } => bytes.truncate(at(*i, bytes.len() + 1)),
        Mutation::Insert { at: i, bytes: new } => {
            let i = at(*i, bytes.len() + 1);
            bytes.splice(i..i, new.iter().copied());
        }
        Mutation::Remove { at: i, len } if !bytes.is_empty() => {
            let i = at(*i, bytes.len());
            let end = (i + len).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Token { at: i, token } => {
            let i = at(*i, bytes.len() + 1);
            let end = (i + token.len()).min(bytes.len());
            bytes.splice(i..end, token.bytes());
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_real_checkpoints_never_panic(which in 0usize..4, mutations in prop::collection::vec(mutation(), 1..6)) {
        let (format, mut bytes) = seeds().swap_remove(which);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if let Ok(checkpoint) = Checkpoint::from_bytes(&bytes, format) {
            // Whatever loads is a usable model: finite [1, 1] parameters.
            prop_assert!(checkpoint.params.iter().all(|p| p.shape == [1, 1] && p.first_non_finite().is_none()));
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), format in prop::sample::select(vec![Format::Json, Format::Bpk, Format::Safetensors])) {
        let _ = Checkpoint::from_bytes(&bytes, format);
    }
}
