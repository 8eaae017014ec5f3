//! The NDJSON response reader: bytes from a plugin's stdout are framed by
//! `NdjsonCodec` (fed in chunks whose sizes the input chooses, to exercise the
//! partial-line paths) and each line is parsed as a `Response`. Every input must
//! give frames or errors, and the codec must never hold more than its window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plugd_runtime::codec::{Frame, NdjsonCodec};
use plugd_runtime::protocol::Response;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let max_line = 1 + (head as usize % 64) * 16;
    let chunk = 1 + (head as usize >> 4);
    let mut codec = NdjsonCodec::new(max_line);
    let mut buf = BytesMut::new();
    let handle = |frame: Frame| {
        if let Frame::Line(line) = frame {
            assert!(line.len() <= max_line, "a line over the limit was framed");
            let _ = serde_json::from_slice::<Response>(&line);
        }
    };
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(frame) = codec.decode(&mut buf).expect("decode never fails on bytes") {
            handle(frame);
        }
        assert!(buf.len() <= max_line + 2 + chunk, "the codec buffered past its window");
    }
    while let Some(frame) = codec.decode_eof(&mut buf).expect("decode_eof") {
        handle(frame);
    }
});
