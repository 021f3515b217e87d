//! Answers rendered piece by piece while the client reads them.
//!
//! A DescribeInstances of ten thousand instances is about 20 MB of XML.
//! Rendered whole, the answer and the instances behind it sat in memory
//! until the last byte was sent: sixteen such listings at once held about
//! 400 MiB. A streamed answer is rendered into chunks of [`CHUNK_BYTES`]
//! sent through a channel of [`CHUNK_BACKLOG`] chunks: the renderer waits
//! while the client has not read what was sent (backpressure), so a
//! listing holds a few chunks and one page of instances, whatever its
//! length, and a slow reader holds no more.
//!
//! The bytes are exactly those of the whole rendering (the same writer,
//! its depth carried from chunk to chunk). The status line and headers go
//! out first, so whatever can fail with an EC2 error (validation, the first
//! page's reads) is done before the stream starts. A failure after that
//! (the store stops answering mid-listing) cannot become an error answer:
//! the body then ends with an error, hyper cuts the connection without the
//! closing chunk, and the client sees a truncated answer and retries,
//! never a short listing that looks whole.

use super::xml::XmlWriter;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, Semaphore};

/// About how many bytes one chunk carries. Each chunk is a hand-over
/// between the renderer's task and the connection's, and a write that
/// wakes the reader: with 64 KiB, a one-connection listing of 10,000
/// instances (26 MB) took 40 to 43 ms at p50 where a bare hyper server
/// sends as many bytes in 8 ms; with 256 KiB, 27 to 28 ms, and 16
/// connections list as fast as before (README, "Streamed listings").
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Chunks rendered ahead of what the client has read (besides the one
/// being written and the one being rendered): with the larger chunks,
/// two hold as many bytes ahead as four did before.
pub const CHUNK_BACKLOG: usize = 2;

/// One piece of a streamed answer: data, or the mark that it is complete.
#[derive(Debug)]
pub enum Piece {
    Data(Bytes),
    End,
}

/// The client stopped reading (it hung up): the renderer stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientGone;

/// A failure that stops a streamed answer mid-way (logged, then the
/// connection is cut).
#[derive(Debug)]
pub struct StreamFailed(pub String);

impl std::fmt::Display for StreamFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a streamed answer failed mid-way: {}", self.0)
    }
}

impl std::error::Error for StreamFailed {}

impl From<ClientGone> for StreamFailed {
    fn from(_: ClientGone) -> Self {
        StreamFailed("the client stopped reading".into())
    }
}

type Produce = Box<
    dyn FnOnce(
            StreamWriter,
        ) -> Pin<Box<dyn Future<Output = Result<StreamWriter, StreamFailed>> + Send>>
        + Send,
>;

/// The renderer of a streamed answer's content (what goes between the
/// `requestId` and the closing root tag), run in a task of its own.
pub struct XmlStream {
    produce: Produce,
}

impl std::fmt::Debug for XmlStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XmlStream")
    }
}

impl XmlStream {
    /// A stream whose content `produce` writes into the [`StreamWriter`]
    /// it is given, and gives back when done.
    pub fn new<F, Fut>(produce: F) -> Self
    where
        F: FnOnce(StreamWriter) -> Fut + Send + 'static,
        Fut: Future<Output = Result<StreamWriter, StreamFailed>> + Send + 'static,
    {
        Self {
            produce: Box::new(move |writer| Box::pin(produce(writer))),
        }
    }
}

/// Where a streamed answer is written: an [`XmlWriter`] whose bytes are
/// sent as chunks.
pub struct StreamWriter {
    xml: XmlWriter,
    pieces: mpsc::Sender<Piece>,
    /// A filtered listing's turns (one per core), taken for each page read.
    turns: Option<Arc<Semaphore>>,
}

impl StreamWriter {
    /// The writer, at the depth the answer is at.
    pub fn xml(&mut self) -> &mut XmlWriter {
        &mut self.xml
    }

    /// Sends what was written once it makes a chunk, waiting while the
    /// client is [`CHUNK_BACKLOG`] chunks behind.
    pub async fn flush_if_full(&mut self) -> Result<(), ClientGone> {
        if self.xml.len() >= CHUNK_BYTES {
            self.send().await?;
        }
        Ok(())
    }

    /// Runs `read` (the next page of the answer) as the handler ran the
    /// first: a filtered listing in its turn and off the runtime's
    /// workers, so a client that reads slowly holds no turn while it
    /// reads. Refused once the client has hung up.
    pub async fn read<T>(&self, read: impl Future<Output = T>) -> Result<T, ClientGone> {
        if self.pieces.is_closed() {
            return Err(ClientGone);
        }
        match &self.turns {
            Some(turns) => {
                let _turn = turns.acquire().await.map_err(|_| ClientGone)?;
                Ok(crate::gateway::run_off_the_workers(read).await)
            }
            None => Ok(read.await),
        }
    }

    async fn send(&mut self) -> Result<(), ClientGone> {
        let bytes = self.xml.take_bytes(CHUNK_BYTES + CHUNK_BYTES / 4);
        if bytes.is_empty() {
            return Ok(());
        }
        self.pieces
            .send(Piece::Data(Bytes::from(bytes)))
            .await
            .map_err(|_| ClientGone)
    }
}

/// Starts rendering `stream` as the answer to `action`: the prologue (as
/// `render_response` writes it), the content, the closing tag. `turns`:
/// a filtered listing's share of the cores, which each page read takes
/// (see [`StreamWriter::read`]). Returns the body to send.
pub fn start(
    action: &str,
    version: &str,
    request_id: &str,
    stream: XmlStream,
    turns: Option<Arc<Semaphore>>,
) -> StreamedBody {
    let (sender, receiver) = mpsc::channel(CHUNK_BACKLOG);
    let mut xml = XmlWriter::new(true, CHUNK_BYTES + CHUNK_BYTES / 4);
    super::xml::open_response(&mut xml, action, version, request_id);
    let writer = StreamWriter {
        xml,
        pieces: sender.clone(),
        turns,
    };
    let action = action.to_string();
    let request_id = request_id.to_string();
    let produce = stream.produce;
    tokio::spawn(async move {
        let finished = async {
            let mut writer = produce(writer).await?;
            super::xml::close_response(&mut writer.xml, &action);
            writer.xml.end_document();
            writer.send().await?;
            Ok::<_, StreamFailed>(writer)
        }
        .await;
        match finished {
            Ok(writer) => {
                let _ = writer.pieces.send(Piece::End).await;
            }
            // Without `End`, the body fails and the connection is cut.
            Err(failure) if sender.is_closed() => {
                tracing::debug!(%request_id, %failure, "streamed answer not read to the end")
            }
            Err(failure) => tracing::warn!(%request_id, %failure, "streamed answer cut"),
        }
        drop(sender);
    });
    StreamedBody {
        pieces: receiver,
        ended: false,
    }
}

/// The body of a streamed answer (see the module documentation).
pub struct StreamedBody {
    pieces: mpsc::Receiver<Piece>,
    ended: bool,
}

impl Body for StreamedBody {
    type Data = Bytes;
    type Error = StreamFailed;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamFailed>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.pieces.poll_recv(cx) {
            Poll::Ready(Some(Piece::Data(bytes))) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Poll::Ready(Some(Piece::End)) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(StreamFailed(
                    "the renderer stopped before the end".into(),
                ))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The body of any answer: whole (with its length), or streamed.
pub enum AnswerBody {
    Whole(Option<Bytes>),
    Streamed(StreamedBody),
}

impl AnswerBody {
    /// A body rendered whole.
    pub fn whole(bytes: Vec<u8>) -> Self {
        if bytes.is_empty() {
            AnswerBody::Whole(None)
        } else {
            AnswerBody::Whole(Some(Bytes::from(bytes)))
        }
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = StreamFailed;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamFailed>>> {
        match self.get_mut() {
            AnswerBody::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            AnswerBody::Streamed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AnswerBody::Whole(bytes) => bytes.is_none(),
            AnswerBody::Streamed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            AnswerBody::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            AnswerBody::Streamed(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Writes `items` items of about 1 KiB each into a list, chunk by chunk.
    fn listing(items: usize, fail_after: Option<usize>) -> XmlStream {
        XmlStream::new(move |mut writer: StreamWriter| async move {
            writer.xml().open("itemSet");
            for n in 0..items {
                if fail_after == Some(n) {
                    return Err(StreamFailed("the store stopped answering".into()));
                }
                writer.xml().element("item", &format!("{n:01024}"));
                writer.flush_if_full().await?;
            }
            writer.xml().close("itemSet");
            Ok(writer)
        })
    }

    struct Whole(usize);

    impl super::super::xml::XmlOutput for Whole {
        fn write_xml(&self, xml: &mut XmlWriter) {
            xml.nested("itemSet", |xml| {
                for n in 0..self.0 {
                    xml.element("item", &format!("{n:01024}"));
                }
            });
        }
    }

    /// A streamed answer is the whole rendering, in several chunks.
    #[tokio::test]
    async fn a_stream_carries_the_bytes_of_the_whole_rendering() {
        let body = start(
            "DescribeThings",
            "2016-11-15",
            "req-1",
            listing(2000, None),
            None,
        );
        let mut chunks = 0;
        let mut bytes = Vec::new();
        let mut body = std::pin::pin!(body);
        while let Some(frame) = body.frame().await {
            bytes.extend_from_slice(&frame.unwrap().into_data().unwrap());
            chunks += 1;
        }
        let whole = super::super::xml::render_response(
            "DescribeThings",
            "2016-11-15",
            "req-1",
            &Whole(2000),
        );
        assert_eq!(bytes, whole);
        assert!(chunks >= 2000 * 1024 / CHUNK_BYTES, "{chunks} chunks");
        assert!(chunks >= 2, "{chunks} chunks");
    }

    /// A failure mid-way ends the body with an error (the connection is
    /// cut), never with a clean end after a short listing.
    #[tokio::test]
    async fn a_failure_mid_way_fails_the_body() {
        let body = start(
            "DescribeThings",
            "2016-11-15",
            "req-1",
            listing(500, Some(300)),
            None,
        );
        let collected = body.collect().await;
        assert!(collected.is_err(), "the body ended cleanly");
    }
}
