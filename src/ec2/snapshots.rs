//! The account's EBS snapshots: reading them (for orphans) and deleting them.

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types as sdk;

use super::Ec2;
use crate::error::Error;
use crate::model::Snapshot;
use crate::model::SnapshotState;
use crate::types::{AccountId, Region, SnapshotId};
use futures::StreamExt as _;

/// What DeleteSnapshot did. A snapshot in use is a fate, not a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotDeletion {
    Deleted,
    AlreadyGone,
    /// EC2 answered `InvalidSnapshot.InUse`; its message names the user.
    InUse(String),
}

impl Ec2 {
    /// Every snapshot the account owns in the region.
    pub async fn own_snapshots(&self) -> Result<Vec<Snapshot>, Error> {
        let mut pages = std::pin::pin!(self.pages(
            |token| {
                (self.ec2().describe_snapshots())
                    .owner_ids("self")
                    .max_results(1000)
                    .set_next_token(token)
                    .send()
            },
            aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsOutput::next_token,
        ));
        let mut snapshots = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.page_error("DescribeSnapshots", &err))?;
            snapshots.extend(
                page.snapshots()
                    .iter()
                    .map(|s| snapshot_from_sdk(s, &self.region, self.account_id.as_ref())),
            );
        }
        Ok(snapshots)
    }

    /// Deletes a snapshot. One already gone is not an error: a re-run finishes the job.
    pub async fn delete_snapshot(&self, id: &SnapshotId) -> Result<SnapshotDeletion, Error> {
        let stream = self.streams.of("DeleteSnapshot");
        self.streams
            .send(&stream, |config| async move {
                let result = self
                    .ec2()
                    .delete_snapshot()
                    .snapshot_id(id.as_str())
                    .customize()
                    .config_override(config)
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(SnapshotDeletion::Deleted),
                    Err(err) => match err.code() {
                        Some("InvalidSnapshot.NotFound") => Ok(SnapshotDeletion::AlreadyGone),
                        Some("InvalidSnapshot.InUse") => {
                            Ok(SnapshotDeletion::InUse(err.message().unwrap_or("in use").to_owned()))
                        }
                        _ => Err(self.error("DeleteSnapshot", &err)),
                    },
                }
            })
            .await
    }
}

fn snapshot_from_sdk(snapshot: &sdk::Snapshot, region: &Region, account_id: Option<&AccountId>) -> Snapshot {
    Snapshot {
        region: region.clone(),
        account_id: account_id.cloned(),
        snapshot_id: SnapshotId::from_ec2(snapshot.snapshot_id().unwrap_or_default()),
        size_gib: snapshot.volume_size().map(i64::from),
        description: snapshot.description().map(str::to_owned),
        state: snapshot.state().map(|s| SnapshotState::parse(s.as_str())),
        start_time: snapshot
            .start_time()
            .and_then(|t| jiff::Timestamp::from_second(t.secs()).ok()),
    }
}
