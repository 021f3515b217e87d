//! A connection whose writes may not stall for longer than a limit.
//!
//! hyper 1.x has no write timeout: a client that sends a request and then
//! stops reading (a zero TCP window, which the kernel keeps probing
//! without error) holds its connection, and whatever renders its answer,
//! for ever. A streamed listing waits on such a client with its page of
//! instances in hand. Here, a write (or flush) that stays pending for
//! longer than the limit fails with `TimedOut`: hyper then drops the
//! connection, its answer and its renderer. The clock restarts at every
//! write that makes progress, so a slow but steady reader is never cut.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner`, with a deadline on writes that make no progress.
pub struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Running while a write is pending; cleared when one completes.
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled_since: None,
        }
    }

    /// Passes `answer` on, restarting the clock on progress and failing
    /// the write once it has been pending for longer than the limit.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        answer: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match answer {
            Poll::Ready(result) => {
                self.stalled_since = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let limit = self.limit;
                let deadline = self
                    .stalled_since
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if deadline.as_mut().poll(cx).is_ready() {
                    self.stalled_since = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading the answer",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let answer = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, answer)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let answer = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, answer)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let answer = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, answer)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A peer that never reads: the write fails after the limit, not
    /// before, and a reading peer is never cut.
    #[tokio::test]
    async fn a_write_the_peer_never_takes_fails_after_the_limit() {
        let (ours, theirs) = tokio::io::duplex(1024);
        let mut ours = WriteDeadline::new(ours, Duration::from_millis(200));
        let started = std::time::Instant::now();
        let mut written = 0usize;
        let outcome = loop {
            match ours.write(&[0u8; 512]).await {
                Ok(n) => written += n,
                Err(error) => break error,
            }
        };
        assert_eq!(outcome.kind(), io::ErrorKind::TimedOut);
        assert_eq!(written, 1024, "the buffer filled first");
        assert!(started.elapsed() >= Duration::from_millis(200));
        drop(theirs);
    }

    #[tokio::test]
    async fn a_slow_steady_reader_is_not_cut() {
        use tokio::io::AsyncReadExt;
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut ours = WriteDeadline::new(ours, Duration::from_millis(100));
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buf = [0u8; 64];
            while total < 4096 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                total += theirs.read(&mut buf).await.unwrap();
            }
            total
        });
        // 64 waits of 20 ms: far longer than the limit in all, never
        // longer than it at once.
        ours.write_all(&[1u8; 4096]).await.expect("never cut");
        assert_eq!(reader.await.unwrap(), 4096);
    }
}
