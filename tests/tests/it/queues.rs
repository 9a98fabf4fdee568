//! The adapters' queues as RabbitMQ keeps them: quorum queues, so that on
//! a cluster a lost node loses no event; and what a queue holds.

use lapin::options::BasicGetOptions;
use lapin::types::{AMQPValue, FieldTable};
use lienthong_adapters::framework::consumer::REASON_HEADER;

use crate::support::{System, amqp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adapters_queue_and_dead_letter_queue_is_a_quorum_queue() {
    let system = System::start().await;
    for sector in lienthong_adapters::sectors::names() {
        let dead_letters = system.dead_letter_queue(sector);
        let queue = system.queue(sector);
        assert_eq!(
            queue_type(&queue, Some(&dead_letters)).await,
            "quorum",
            "{queue}"
        );
        assert_eq!(
            queue_type(&dead_letters, None).await,
            "quorum",
            "{dead_letters}"
        );
    }
    system.clean_up().await;
}

/// The type `queue` was declared with, as the broker says when it is
/// declared again as classic with its other arguments (dead-lettering to
/// `dead_letters`) unchanged: refused unless it is classic.
async fn queue_type(queue: &str, dead_letters: Option<&str>) -> String {
    let channel = amqp().await.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    if let Some(dead) = dead_letters {
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(dead.into()),
        );
    }
    let declared = channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await;
    match declared {
        Ok(_) => "classic".to_owned(),
        Err(e) => {
            let said = e.to_string();
            // "… inequivalent arg 'x-queue-type' for queue '…' in vhost '/':
            // received 'classic' but current is 'quorum'"
            assert!(said.contains("x-queue-type"), "{said}");
            said.rsplit("current is '")
                .next()
                .and_then(|t| t.split('\'').next())
                .unwrap_or_default()
                .to_owned()
        }
    }
}

/// The messages in `queue`, taken off it.
pub async fn drain(queue: &str) -> Vec<(Vec<u8>, String)> {
    let conn = amqp().await;
    let channel = conn.create_channel().await.unwrap();
    let mut out = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let reason = message
            .delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(REASON_HEADER).cloned())
            .map(|v| match v {
                AMQPValue::LongString(s) => s.to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        out.push((message.delivery.data.clone(), reason));
    }
    let _ = conn.close(200, "ok".into()).await;
    out
}
