//! The task that drains an exporter's disk queue, as both forwarding exporters (remote write,
//! OTLP) run it: spawned with a stop signal and the wake-up the exporter rings when a batch is
//! due; stopped after its current try on `shutdown` or when the exporter is dropped. What it has
//! not sent stays queued for the next start.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct SenderTask {
    stop: watch::Sender<bool>,
    wake: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl SenderTask {
    /// Spawns `run(stopped)` on the current tokio runtime; `stopped` turns true when the task
    /// should end, and `wake` is notified with it.
    pub fn spawn<F>(wake: Arc<Notify>, run: impl FnOnce(watch::Receiver<bool>) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(stopped));
        Self {
            stop,
            wake,
            task: Some(task),
        }
    }

    /// True once the exporter is shutting down: it takes no new data.
    pub fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Stops the task after its current try and waits for it.
    pub async fn shutdown(mut self) {
        self.signal();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn signal(&self) {
        let _ = self.stop.send(true);
        self.wake.notify_one();
    }
}

impl Drop for SenderTask {
    fn drop(&mut self) {
        self.signal();
    }
}
