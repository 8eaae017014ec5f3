//! NDJSON framing with the `OMNIFLOW_PLUGIN_MAX_LINE` guard, as a tokio-util
//! [`Decoder`] / [`Encoder`].
//!
//! Why not `LinesCodec::new_with_max_length`: it reports an over-long line as a
//! decoder *error*, and a `FramedRead` ends its stream after the first error, so one
//! bad line from a plugin would cut plugd off from every later answer. It also
//! insists on UTF-8, which turns a plugin's binary garbage into another stream-ending
//! error. [`NdjsonCodec`] instead yields every line as a [`Frame`] item and leaves
//! judging the bytes to the caller. A line that breaks the limit is announced by
//! [`Frame::Oversized`] the moment it does (a plugin may never finish it) and closed
//! by [`Frame::Discarded`] when it ends. The limit is enforced before anything is parsed: while an
//! over-long line streams in, its bytes are counted and dropped, never buffered, so a
//! plugin that floods stdout without newlines holds at most `max_line + 2` bytes of
//! plugd's memory plus one read chunk.
//!
//! The limit counts the bytes of a line without its terminator; `\r\n` is accepted
//! as a terminator.

use std::io;

use serde::Serialize;
use tokio_util::bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// How many leading bytes of an over-long line are kept, to log and to look for its id.
pub const OVERSIZED_PREFIX: usize = 256;

/// One line (or event of one line) read from a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line within the limit, without its `\n` / `\r\n`. Not checked for
    /// UTF-8 or JSON: that is the reader's call.
    Line(Bytes),
    /// The current line has just passed the limit. It is reported at once, not
    /// when it ends, because a plugin may never end it; the rest of the line is
    /// discarded as it arrives and [`Frame::Discarded`] follows when it ends.
    Oversized {
        /// The line's first [`OVERSIZED_PREFIX`] bytes.
        prefix: Bytes,
    },
    /// The over-long line announced by [`Frame::Oversized`] ended (newline or EOF).
    Discarded {
        /// How many bytes it had, without the terminator.
        len: u64,
    },
}

/// Why a value could not be framed for sending.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The encoded line would break the line limit; nothing was written.
    #[error(
        "the encoded line is {len} bytes, over the {limit}-byte limit (OMNIFLOW_PLUGIN_MAX_LINE); it was not sent"
    )]
    LineTooLong {
        /// Size of the encoded line without its newline.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The value could not be written as JSON.
    #[error("the value could not be encoded as JSON")]
    Json(#[source] serde_json::Error),
    /// Writing to the sink failed.
    #[error("writing a line failed")]
    Io(#[from] io::Error),
}

/// Encodes `value` as one compact JSON line ending in `\n`, refusing it when the
/// JSON alone is longer than `max_line` bytes.
///
/// serde_json's compact output never contains a raw newline (control characters in
/// strings are escaped), so the result is always exactly one line.
pub fn encode_line<T: Serialize + ?Sized>(
    value: &T,
    max_line: usize,
) -> Result<Vec<u8>, CodecError> {
    let mut line = serde_json::to_vec(value).map_err(CodecError::Json)?;
    if line.len() > max_line {
        return Err(CodecError::LineTooLong {
            len: line.len(),
            limit: max_line,
        });
    }
    line.push(b'\n');
    Ok(line)
}

/// The NDJSON codec: decodes [`Frame`]s, encodes any `Serialize` value as one line.
#[derive(Debug, Clone)]
pub struct NdjsonCodec {
    max_line: usize,
    /// How far the current buffer was already searched for `\n`, so a line arriving
    /// in many small reads is not rescanned from its start each time.
    scanned: usize,
    /// Inside an over-long line: the bytes seen so far.
    discarding: Option<u64>,
    /// An over-long line that ended with the read that revealed it: its
    /// [`Frame::Discarded`] is due next.
    ended: Option<u64>,
}

impl NdjsonCodec {
    /// A codec refusing lines longer than `max_line` bytes (at least 1).
    pub fn new(max_line: usize) -> NdjsonCodec {
        NdjsonCodec {
            max_line: max_line.max(1),
            scanned: 0,
            discarding: None,
            ended: None,
        }
    }

    /// The limit in force.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The bytes a line may take with its terminator: content, `\r`, `\n`.
    fn window(&self) -> usize {
        self.max_line.saturating_add(2)
    }

    fn finish_line(&mut self, mut line: BytesMut) -> Frame {
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        if line.len() > self.max_line {
            self.ended = Some(line.len() as u64);
            line.truncate(OVERSIZED_PREFIX);
            Frame::Oversized {
                prefix: line.freeze(),
            }
        } else {
            Frame::Line(line.freeze())
        }
    }
}

impl Decoder for NdjsonCodec {
    type Item = Frame;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, io::Error> {
        if let Some(len) = self.ended.take() {
            return Ok(Some(Frame::Discarded { len }));
        }
        if let Some(len) = &mut self.discarding {
            return Ok(match buf.iter().position(|b| *b == b'\n') {
                Some(newline) => {
                    let len = *len + newline as u64;
                    buf.advance(newline + 1);
                    self.discarding = None;
                    Some(Frame::Discarded { len })
                }
                None => {
                    *len += buf.len() as u64;
                    buf.clear();
                    None
                }
            });
        }

        let window_end = buf.len().min(self.window());
        let start = self.scanned.min(window_end);
        if let Some(offset) = buf[start..window_end].iter().position(|b| *b == b'\n') {
            let newline = start + offset;
            self.scanned = 0;
            let mut line = buf.split_to(newline + 1);
            line.truncate(newline);
            return Ok(Some(self.finish_line(line)));
        }
        if buf.len() < self.window() {
            self.scanned = buf.len();
            return Ok(None);
        }
        // A full window without a newline: the line is too long whatever follows.
        // Only the window is consumed here; the rest of the buffer goes through the
        // discard branch, where the line may end and the next lines must survive.
        let prefix = Bytes::copy_from_slice(&buf[..OVERSIZED_PREFIX.min(window_end)]);
        buf.advance(window_end);
        self.scanned = 0;
        self.discarding = Some(window_end as u64);
        Ok(Some(Frame::Oversized { prefix }))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, io::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        if let Some(len) = self.discarding.take() {
            return Ok(Some(Frame::Discarded { len }));
        }
        self.scanned = 0;
        if buf.is_empty() {
            return Ok(None);
        }
        // The last line lacked its newline; a writer that exits right after printing
        // still said something, so it is framed rather than dropped.
        let line = buf.split_to(buf.len());
        Ok(Some(self.finish_line(line)))
    }
}

impl<T: Serialize> Encoder<T> for NdjsonCodec {
    type Error = CodecError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), CodecError> {
        let line = encode_line(&item, self.max_line)?;
        dst.reserve(line.len());
        dst.put_slice(&line);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use serde_json::json;
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::FramedRead;

    fn line(s: &str) -> Frame {
        Frame::Line(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn decode_all(codec: &mut NdjsonCodec, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                out.push(frame);
            }
        }
        while let Some(frame) = codec.decode_eof(&mut buf).unwrap() {
            out.push(frame);
        }
        out
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let mut codec = NdjsonCodec::new(100);
        let frames = decode_all(&mut codec, &[b"{\"a\"", b":1}\n{\"b", b"\":2}", b"\n"]);
        assert_eq!(frames, vec![line("{\"a\":1}"), line("{\"b\":2}")]);
    }

    #[test]
    fn crlf_and_missing_final_newline_are_tolerated() {
        let mut codec = NdjsonCodec::new(100);
        let frames = decode_all(&mut codec, &[b"one\r\ntwo\n\nthree"]);
        assert_eq!(
            frames,
            vec![line("one"), line("two"), line(""), line("three")]
        );
    }

    fn oversized(prefix: &[u8]) -> Frame {
        Frame::Oversized {
            prefix: Bytes::copy_from_slice(prefix),
        }
    }

    #[test]
    fn limit_is_exact() {
        let mut codec = NdjsonCodec::new(5);
        let frames = decode_all(&mut codec, &[b"12345\n123456\n12345\r\nok\n"]);
        assert_eq!(
            frames,
            vec![
                line("12345"),
                oversized(b"123456"),
                Frame::Discarded { len: 6 },
                line("12345"), // the \r does not count against the limit
                line("ok"),
            ]
        );
    }

    #[test]
    fn oversized_line_is_counted_and_the_next_line_survives_in_the_same_buffer() {
        let mut codec = NdjsonCodec::new(10);
        let mut input = vec![b'x'; 1000];
        input.extend_from_slice(b"\n{\"id\":\"n\"}\n");
        let frames = decode_all(&mut codec, &[&input]);
        assert_eq!(
            frames,
            vec![
                oversized(&[b'x'; 12]),
                Frame::Discarded { len: 1000 },
                line("{\"id\":\"n\"}")
            ]
        );
    }

    #[test]
    fn oversized_line_is_announced_before_it_ends_and_discarded_as_it_arrives() {
        let mut codec = NdjsonCodec::new(300);
        let mut buf = BytesMut::new();
        let chunk = [b'y'; 4096];
        buf.extend_from_slice(&chunk);
        match codec.decode(&mut buf).unwrap() {
            Some(Frame::Oversized { prefix }) => assert_eq!(prefix.len(), OVERSIZED_PREFIX),
            other => panic!("expected the line to be announced, got {other:?}"),
        }
        for _ in 0..2560 {
            assert_eq!(codec.decode(&mut buf).unwrap(), None);
            assert!(buf.is_empty(), "buffer kept {} bytes", buf.len());
            buf.extend_from_slice(&chunk);
        }
        buf.extend_from_slice(b"tail\nnext\n");
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(Frame::Discarded {
                len: 2561 * 4096 + 4
            })
        );
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(line("next")));
    }

    #[test]
    fn oversized_line_cut_by_eof_is_reported() {
        let mut codec = NdjsonCodec::new(4);
        let frames = decode_all(&mut codec, &[b"abcdefgh"]);
        assert_eq!(
            frames,
            vec![oversized(b"abcdef"), Frame::Discarded { len: 8 }]
        );
        let mut codec = NdjsonCodec::new(4);
        let frames = decode_all(&mut codec, &[b"abcde"]);
        assert_eq!(
            frames,
            vec![oversized(b"abcde"), Frame::Discarded { len: 5 }]
        );
    }

    #[test]
    fn binary_garbage_is_framed_not_fatal() {
        let mut codec = NdjsonCodec::new(100);
        let frames = decode_all(&mut codec, &[b"\xff\xfe\x00\n{}\n"]);
        assert_eq!(
            frames,
            vec![Frame::Line(Bytes::from_static(b"\xff\xfe\x00")), line("{}")]
        );
    }

    #[tokio::test]
    async fn flood_without_newline_keeps_framed_read_buffer_bounded() {
        let limit = 1024;
        let (mut tx, rx) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(async move {
            let chunk = vec![b'z'; 64 * 1024];
            for _ in 0..160 {
                // 10 MiB in all, no newline until the very end.
                tx.write_all(&chunk).await.unwrap();
            }
            tx.write_all(b"\n{\"ok\":1}\n").await.unwrap();
        });
        let mut framed = FramedRead::new(rx, NdjsonCodec::new(limit));
        let first = framed.next().await.unwrap().unwrap();
        assert!(matches!(first, Frame::Oversized { .. }), "{first:?}");
        let second = framed.next().await.unwrap().unwrap();
        assert_eq!(
            second,
            Frame::Discarded {
                len: 160 * 64 * 1024
            }
        );
        assert!(
            framed.read_buffer().capacity() <= 256 * 1024,
            "read buffer grew to {} bytes",
            framed.read_buffer().capacity()
        );
        assert_eq!(framed.next().await.unwrap().unwrap(), line("{\"ok\":1}"));
        writer.await.unwrap();
    }

    #[test]
    fn encoder_refuses_lines_over_the_limit_without_writing() {
        let mut codec = NdjsonCodec::new(20);
        let mut dst = BytesMut::new();
        codec.encode(json!({"a": 1}), &mut dst).unwrap();
        assert_eq!(&dst[..], b"{\"a\":1}\n");
        let err = codec
            .encode(json!({"message": "x".repeat(50)}), &mut dst)
            .unwrap_err();
        assert!(
            matches!(err, CodecError::LineTooLong { len: 64, limit: 20 }),
            "{err:?}"
        );
        assert_eq!(&dst[..], b"{\"a\":1}\n", "nothing appended");
    }

    #[test]
    fn encoded_line_never_contains_an_inner_newline() {
        let line = encode_line(&json!({"m": "a\nb\r\nc"}), 1000).unwrap();
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
    }
}
