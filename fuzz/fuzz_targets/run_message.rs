//! Any bytes as a message on the reconcile queue, as the reconciler reads it.
//!
//! Never a panic. A message that decodes encodes again to a message that decodes to the same
//! run, and its set difference decodes (whole or not) without a panic.

#![no_main]

use drift::RunMessage;
use drift::cursor::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = decode(body) else {
        return;
    };
    if let RunMessage::Continue(cursor) = &message {
        let difference = cursor.difference().expect("decode checked the difference");
        let _ = difference.decode();
    }
    if let Ok(again) = encode(&message) {
        assert_eq!(decode(&again).expect("an encoded message decodes"), message);
    }
});
