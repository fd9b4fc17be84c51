//! A server's replication stream (`kvs_proto::stream`): the real
//! `kvs-server` replica behind it, fed arbitrary bytes as one connection's
//! worth of hello and calls. Setup byte bit 0: a cluster secret is
//! configured. The caller's end is closed after the input, so every input
//! ends; each must end without a panic, and the replica must stay readable.

#![no_main]

use std::sync::Arc;
use std::time::Duration;

use kvs_proto::stream::{self, StreamBounds};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use kvs_server::service::ReplicaService;

/// Larger than any input and the replies to it, so neither end waits on
/// the other's reading.
const PIPE_BYTES: usize = 1 << 22;

fuzz_target!(|data: &[u8]| {
    let (setup, bytes) = kvs_fuzz::split_setup(data);
    let secret = (setup & 1 != 0).then(|| Arc::new(kvs_fuzz::secret()));
    kvs_fuzz::runtime().block_on(async {
        let replica = Arc::new(ReplicaService::new(0));
        let (mut caller, server) = tokio::io::duplex(PIPE_BYTES);
        let bounds = StreamBounds {
            idle: Duration::from_secs(5),
            call: Duration::from_secs(5),
        };
        let served = stream::serve(server, Arc::clone(&replica), secret, bounds);
        let called = async {
            let _ = caller.write_all(bytes).await;
            let _ = caller.shutdown().await;
            let mut replies = Vec::new();
            let _ = caller.read_to_end(&mut replies).await;
        };
        tokio::join!(served, called);
        let _ = replica.pairs();
    });
});
