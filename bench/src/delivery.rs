//! The server's own account of how long messages waited (`signaling_message_delivery_seconds`
//! in its `/metrics`), beside the latency the load generator measures: if the two differ,
//! the time went outside the server (the generator, the kernel, scheduling).

use std::net::SocketAddr;

use bench_support::BenchError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client;

/// `GET /metrics` from `addr`.
pub async fn scrape(addr: SocketAddr) -> Result<String, BenchError> {
    let fetch = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut body = Vec::new();
        s.read_to_end(&mut body).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&body).into_owned())
    };
    Ok(tokio::time::timeout(client::STEP, fetch).await??)
}

/// The delivery histogram: cumulative counts by upper bound (seconds), `+Inf` last.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    buckets: Vec<(f64, f64)>,
}

const NAME: &str = "signaling_message_delivery_seconds_bucket{le=\"";

impl Delivery {
    /// Read from a `/metrics` text (empty if the server has no such histogram).
    pub fn parse(text: &str) -> Self {
        let buckets = text
            .lines()
            .filter_map(|l| l.strip_prefix(NAME))
            .filter_map(|rest| {
                let (le, count) = rest.split_once("\"} ")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, count.trim().parse().ok()?))
            })
            .collect();
        Self { buckets }
    }

    /// What was observed after `before`.
    pub fn since(&self, before: &Delivery) -> Delivery {
        let buckets = self
            .buckets
            .iter()
            .map(|&(le, n)| {
                let earlier = before
                    .buckets
                    .iter()
                    .find(|(b, _)| *b == le)
                    .map_or(0.0, |(_, m)| *m);
                (le, n - earlier)
            })
            .collect();
        Delivery { buckets }
    }

    /// How many messages.
    pub fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |(_, n)| *n)
    }

    /// The upper bound (seconds) of the bucket holding the `q` quantile.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let target = q * self.count();
        self.buckets
            .iter()
            .find(|(_, n)| *n >= target && *n > 0.0)
            .map(|(le, _)| *le)
    }

    /// `≤ x ms` for the `q` quantile, or `—`.
    pub fn show(&self, q: f64) -> String {
        match self.quantile(q) {
            Some(le) if le.is_finite() => format!("≤ {:.2} ms", le * 1000.0),
            Some(_) => "> 1.6 s".into(),
            None => "—".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
        signaling_message_delivery_seconds_bucket{le=\"0.00005\"} 10\n\
        signaling_message_delivery_seconds_bucket{le=\"0.0001\"} 90\n\
        signaling_message_delivery_seconds_bucket{le=\"0.0002\"} 99\n\
        signaling_message_delivery_seconds_bucket{le=\"+Inf\"} 100\n\
        signaling_message_delivery_seconds_count 100\n";

    #[test]
    fn quantiles_come_from_the_buckets_observed_in_between() {
        let after = Delivery::parse(TEXT);
        assert_eq!(after.count(), 100.0);
        assert_eq!(after.quantile(0.5), Some(0.0001));
        assert_eq!(after.quantile(0.99), Some(0.0002));
        let before = Delivery::parse(
            "signaling_message_delivery_seconds_bucket{le=\"0.00005\"} 10\n\
             signaling_message_delivery_seconds_bucket{le=\"0.0001\"} 10\n\
             signaling_message_delivery_seconds_bucket{le=\"0.0002\"} 10\n\
             signaling_message_delivery_seconds_bucket{le=\"+Inf\"} 10\n",
        );
        let between = after.since(&before);
        assert_eq!(between.count(), 90.0);
        assert_eq!(between.quantile(0.5), Some(0.0001));
        assert_eq!(between.show(0.95), "≤ 0.20 ms");
        assert_eq!(between.show(0.999), "> 1.6 s");
        assert_eq!(Delivery::parse("").show(0.5), "—");
    }
}
