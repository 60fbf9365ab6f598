//! Cache invalidation between nodes through Redis pub/sub.
//!
//! Every change a node makes is already in the `changes` table (written in the mutation's own
//! transaction) when the node announces it: [`Announcements`] queues it without waiting, and the
//! [`Publisher`] worker publishes it on [`CHANNEL`]. Every node's [`Subscriber`] hands what it
//! hears from the others to its invalidator at once. Pub/sub delivers at most once, so the
//! change feed's poll keeps running, every `SAFETY_POLL_INTERVAL`, and repairs whatever was lost
//! (Redis down, a subscription dropped, a full queue); after each (re)subscription the subscriber
//! also polls once, for what was missed while it was away.
//!
//! A message is `<node> <kind> <entity>`, or `<node> poll` (a command-line change: every node
//! polls the table at once).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::cluster::link::RedisLink;
use crate::domain::invalidation::{Announce, ChangeFeed};
use crate::model::ChangeKind;

/// The channel every node publishes its changes on and listens to.
pub const CHANNEL: &str = "keyward:changes:v1";
/// Announcements waiting to be published; past this, new ones are dropped (the poll repairs).
const QUEUE: usize = 10_000;
/// How long a lost subscription waits before it tries again.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// This node's side of the channel: what it announces, and who it is (to skip its own echoes).
pub struct Announcements {
    node: String,
    queue: mpsc::Sender<String>,
}

impl Announce for Announcements {
    fn announce(&self, kind: ChangeKind, entity: &str) {
        let message = format!("{} {} {entity}", self.node, kind.as_str());
        if self.queue.try_send(message).is_err() {
            tracing::debug!("announcement queue full; the change feed's poll will carry it");
        }
    }
}

/// Makes this node's announcer and the worker that publishes what it queues.
pub fn announcements(link: Arc<RedisLink>) -> (Arc<Announcements>, Publisher) {
    let node = format!("{:016x}", rand::random::<u64>());
    let (queue, pending) = mpsc::channel(QUEUE);
    (
        Arc::new(Announcements {
            node: node.clone(),
            queue,
        }),
        Publisher {
            link,
            pending,
            node,
        },
    )
}

/// Publishes a message once, outside any server (the command line): every node then polls.
pub async fn announce_poll(link: &RedisLink) -> Result<(), crate::cluster::link::LinkError> {
    publish(link, format!("{:016x} poll", rand::random::<u64>())).await
}

/// Puts one message on [`CHANNEL`], within the link's bound.
async fn publish(link: &RedisLink, message: String) -> Result<(), crate::cluster::link::LinkError> {
    link.call(|mut connection| async move {
        redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(message)
            .query_async::<i64>(&mut connection)
            .await
    })
    .await
    .map(|_| ())
}

/// The worker that publishes this node's announcements.
pub struct Publisher {
    link: Arc<RedisLink>,
    pending: mpsc::Receiver<String>,
    node: String,
}

impl Publisher {
    /// The id this node signs its messages with.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Publishes until `shutdown`, then what is still queued.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let message = tokio::select! {
                message = self.pending.recv() => message,
                _ = shutdown.changed() => None,
            };
            let Some(message) = message else { break };
            self.publish(message).await;
        }
        while let Ok(message) = self.pending.try_recv() {
            self.publish(message).await;
        }
    }

    async fn publish(&self, message: String) {
        if let Err(err) = publish(&self.link, message).await {
            tracing::debug!(error = %err, "announcement not published; the change feed's poll will carry it");
        }
    }
}

/// The worker that listens to the channel and applies the other nodes' changes.
pub struct Subscriber {
    client: redis::Client,
    node: String,
    feed: Arc<ChangeFeed>,
}

impl Subscriber {
    pub fn new(link: &RedisLink, node: &str, feed: Arc<ChangeFeed>) -> Self {
        Subscriber {
            client: link.client().clone(),
            node: node.to_string(),
            feed,
        }
    }

    /// Listens until `shutdown`, subscribing again whenever the subscription is lost.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut lost_logged = false;
        loop {
            let subscribed = tokio::time::timeout(Duration::from_secs(1), async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(CHANNEL).await?;
                Ok::<_, redis::RedisError>(pubsub)
            })
            .await;
            match subscribed {
                Ok(Ok(mut pubsub)) => {
                    tracing::info!(channel = CHANNEL, "listening for other nodes' changes");
                    lost_logged = false;
                    // What was announced while this node was not listening.
                    self.poll().await;
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            message = messages.next() => match message {
                                Some(message) => self.handle(message.get_payload_bytes()).await,
                                None => break,
                            },
                            _ = shutdown.changed() => return,
                        }
                    }
                    tracing::warn!(
                        "lost the subscription to other nodes' changes; polling until it is back"
                    );
                }
                Ok(Err(err)) if !lost_logged => {
                    tracing::warn!(error = %err, "cannot subscribe to other nodes' changes; polling until it can");
                    lost_logged = true;
                }
                Err(_) if !lost_logged => {
                    tracing::warn!("no answer to the subscription for other nodes' changes; polling until there is");
                    lost_logged = true;
                }
                _ => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn handle(&self, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let mut parts = text.splitn(3, ' ');
        let (Some(node), Some(kind)) = (parts.next(), parts.next()) else {
            return;
        };
        if node == self.node {
            return;
        }
        match (kind, parts.next()) {
            ("poll", _) => self.poll().await,
            (kind, Some(entity)) => match ChangeKind::parse(kind) {
                Some(kind) => self.feed.invalidator().receive(kind, entity),
                None => tracing::debug!(kind, "unknown change kind announced; ignored"),
            },
            _ => {}
        }
    }

    async fn poll(&self) {
        if let Err(err) = self.feed.run_once().await {
            tracing::warn!(error = %err, "change feed poll failed");
        }
    }
}
