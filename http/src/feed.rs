//! `GET /v1/stream/blocks`: a chain's blocks as server-sent events, as they are sealed.
//!
//! Each event is `id: <height>`, `event: block`, `data: <block JSON>`. A client that reconnects
//! with `Last-Event-ID: <height>` gets every block after that height first (from the explorer),
//! then the live ones: nothing is skipped or repeated. A subscriber that falls behind the live
//! feed is caught up the same way instead of losing blocks. A comment line every
//! [`HEARTBEAT`] keeps proxies and idle timeouts from closing a quiet stream. At most
//! [`SUBSCRIBERS_MAX`] streams at once (503 `unavailable` past it).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use domain::block::Block;
use tokio::sync::{OwnedSemaphorePermit, broadcast};

use crate::app::App;
use crate::error::ApiError;
use crate::routes::ChainQuery;

/// How often a quiet stream gets a comment line.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Most block streams open at once.
pub const SUBSCRIBERS_MAX: usize = 1024;
/// Blocks read from the explorer at a time when catching a stream up.
const CATCH_UP_BATCH: usize = 256;

/// One open stream.
struct Feed {
    app: Arc<App>,
    chain_id: String,
    live: broadcast::Receiver<Arc<Block>>,
    /// The next height to send (none: whatever comes live next).
    next: Option<u64>,
    /// Blocks read back from the explorer, to send before anything live.
    backlog: VecDeque<Block>,
    /// Whether the explorer may hold blocks from `next` on that were not sent (a resume, a gap
    /// in the live feed, a lag): read them back before waiting for live ones.
    behind: bool,
    /// Held while the stream is open.
    _slot: OwnedSemaphorePermit,
}

impl Feed {
    /// Reads the blocks from `next` on that the explorer has, up to a batch; caught up once a
    /// read comes back short.
    fn catch_up(&mut self) {
        let Some(next) = self.next else {
            self.behind = false;
            return;
        };
        let blocks = self
            .app
            .projections
            .read_model
            .blocks(&self.chain_id, next, CATCH_UP_BATCH);
        self.behind = blocks.len() == CATCH_UP_BATCH;
        self.backlog
            .extend(blocks.into_iter().filter(|b| b.height >= next));
    }

    /// The next event of the stream.
    async fn next_event(&mut self) -> Option<web::Bytes> {
        loop {
            if self.backlog.is_empty() && self.behind {
                self.catch_up();
            }
            if let Some(block) = self.backlog.pop_front() {
                self.next = Some(block.height + 1);
                return Some(frame(&block));
            }
            let received = tokio::select! {
                received = self.live.recv() => received,
                () = tokio::time::sleep(HEARTBEAT) => return Some(web::Bytes::from_static(b": keep-alive\n\n")),
            };
            match received {
                Ok(block) if block.chain_id == self.chain_id => match self.next {
                    // Sent already (read back from the explorer).
                    Some(next) if block.height < next => {}
                    // A gap: the explorer has what is missing (the loop reads it back).
                    Some(next) if block.height > next => self.behind = true,
                    _ => {
                        self.next = Some(block.height + 1);
                        return Some(frame(&block));
                    }
                },
                Ok(_) => {}
                // Behind the live feed: the explorer has what it dropped.
                Err(broadcast::error::RecvError::Lagged(_)) => self.behind = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn frame(block: &Block) -> web::Bytes {
    let data = serde_json::to_string(block).expect("blocks serialize");
    web::Bytes::from(format!(
        "id: {}\nevent: block\ndata: {data}\n\n",
        block.height
    ))
}

/// `GET /v1/stream/blocks[?chain=]`, `Last-Event-ID` to resume.
pub(crate) async fn stream_blocks(
    app: web::Data<Arc<App>>,
    request: HttpRequest,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let resume_after = match request.headers().get("Last-Event-ID") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::malformed("Last-Event-ID is a block height"))?,
        ),
    };
    let slot = Arc::clone(&app.block_feeds)
        .try_acquire_owned()
        .map_err(|_| ApiError {
            retry_after_s: Some(5),
            ..ApiError::new(
                "unavailable",
                format!("{SUBSCRIBERS_MAX} block streams are open"),
            )
        })?;
    let feed = Feed {
        live: app.projections.read_model.subscribe_blocks(),
        app: Arc::clone(&app),
        chain_id,
        next: resume_after.map(|height| height + 1),
        backlog: VecDeque::new(),
        behind: resume_after.is_some(),
        _slot: slot,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next_event().await?;
        Some((Ok::<_, actix_web::Error>(event), feed))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(stream))
}
