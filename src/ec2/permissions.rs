//! Launch permissions of images, and create-volume permissions of their snapshots.

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    ImageAttributeName, LaunchPermission, LaunchPermissionModifications, OperationType, PermissionGroup,
    SnapshotAttributeName,
};

use std::collections::BTreeMap;

use futures::StreamExt;

use super::errors::is_server_side;
use super::{Ec2, one_try};
use crate::error::Error;
use crate::model::LaunchPermissions;
use crate::types::{ImageId, SnapshotId};

/// Grants to add or remove in one ModifyImageAttribute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub public: bool,
    pub accounts: Vec<String>,
    pub organization_arns: Vec<String>,
    pub organizational_unit_arns: Vec<String>,
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        !self.public
            && self.accounts.is_empty()
            && self.organization_arns.is_empty()
            && self.organizational_unit_arns.is_empty()
    }

    /// Everything a set of permissions grants: what `reset` removes.
    pub fn all_of(permissions: &LaunchPermissions) -> Grants {
        Grants {
            public: permissions.public,
            accounts: permissions.accounts.clone(),
            organization_arns: permissions.organization_arns.clone(),
            organizational_unit_arns: permissions.organizational_unit_arns.clone(),
        }
    }

    fn to_sdk(&self) -> Vec<LaunchPermission> {
        let mut grants = Vec::new();
        if self.public {
            grants.push(LaunchPermission::builder().group(PermissionGroup::All).build());
        }
        grants.extend(
            self.accounts
                .iter()
                .map(|a| LaunchPermission::builder().user_id(a).build()),
        );
        grants.extend(
            self.organization_arns
                .iter()
                .map(|a| LaunchPermission::builder().organization_arn(a).build()),
        );
        grants.extend(
            self.organizational_unit_arns
                .iter()
                .map(|a| LaunchPermission::builder().organizational_unit_arn(a).build()),
        );
        grants
    }
}

/// Who may create volumes from a snapshot (and so copy the image's data) besides its owner.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotSharing {
    pub snapshot_id: SnapshotId,
    pub public: bool,
    pub accounts: Vec<String>,
}

impl SnapshotSharing {
    pub fn is_shared(&self) -> bool {
        self.public || !self.accounts.is_empty()
    }
}

/// Whether an endpoint carried out a call that not every endpoint implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Done,
    /// The endpoint answered with a server error: do it another way.
    Unsupported,
}

/// Whether to grant or revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Grant,
    Revoke,
}

/// Images whose launch permissions are read at once.
const CONCURRENT_READS: usize = 8;

impl Ec2 {
    /// The launch permissions of each of these images (one DescribeImageAttribute each, a few
    /// at once: EC2 has no batched read of them).
    pub async fn launch_permissions_of(
        &self,
        image_ids: &[&ImageId],
    ) -> Result<BTreeMap<ImageId, LaunchPermissions>, Error> {
        let reads: Vec<Result<(ImageId, LaunchPermissions), Error>> =
            futures::stream::iter(image_ids.iter().map(|id| (*id).clone()).collect::<Vec<ImageId>>())
                .map(|id| async move {
                    let permissions = self.launch_permissions(&id).await?;
                    Ok((id, permissions))
                })
                .buffer_unordered(CONCURRENT_READS)
                .collect()
                .await;
        reads.into_iter().collect()
    }

    /// Who besides the owner may launch the image. Only the owner may read this.
    pub async fn launch_permissions(&self, image_id: &ImageId) -> Result<LaunchPermissions, Error> {
        let stream = self.streams.of(super::pace::PER_ITEM_READS);
        let output = self
            .streams
            .send(&stream, |config| async move {
                self.ec2()
                    .describe_image_attribute()
                    .image_id(image_id.as_str())
                    .attribute(ImageAttributeName::LaunchPermission)
                    .customize()
                    .config_override(config)
                    .send()
                    .await
                    .map_err(|err| self.error("DescribeImageAttribute", &err))
            })
            .await?;
        let mut permissions = LaunchPermissions::default();
        for grant in output.launch_permissions() {
            if grant.group() == Some(&PermissionGroup::All) {
                permissions.public = true;
            }
            if let Some(account) = grant.user_id() {
                permissions.accounts.push(account.to_owned());
            }
            if let Some(org) = grant.organization_arn() {
                permissions.organization_arns.push(org.to_owned());
            }
            if let Some(ou) = grant.organizational_unit_arn() {
                permissions.organizational_unit_arns.push(ou.to_owned());
            }
        }
        Ok(permissions)
    }

    /// Adds and removes launch permission grants in one ModifyImageAttribute. With `dry_run`,
    /// EC2 only says whether it would succeed.
    pub async fn change_launch_permissions(
        &self,
        image_id: &ImageId,
        add: &Grants,
        remove: &Grants,
        dry_run: bool,
    ) -> Result<(), Error> {
        let mut changes = LaunchPermissionModifications::builder();
        if !add.is_empty() {
            changes = changes.set_add(Some(add.to_sdk()));
        }
        if !remove.is_empty() {
            changes = changes.set_remove(Some(remove.to_sdk()));
        }
        let result = self
            .ec2()
            .modify_image_attribute()
            .image_id(image_id.as_str())
            .launch_permission(changes.build())
            .dry_run(dry_run)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if dry_run && err.code() == Some("DryRunOperation") => Ok(()),
            Err(err) => Err(self.error("ModifyImageAttribute", &err)),
        }
    }

    /// ResetImageAttribute on launch permissions: removes every explicit grant and public access.
    pub async fn reset_launch_permissions(&self, image_id: &ImageId) -> Result<Support, Error> {
        let result = self
            .ec2()
            .reset_image_attribute()
            .image_id(image_id.as_str())
            .attribute(aws_sdk_ec2::types::ResetImageAttributeName::LaunchPermission)
            .customize()
            .config_override(one_try())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Support::Done),
            Err(err) if is_server_side(&err) => Ok(Support::Unsupported),
            Err(err) => Err(self.error("ResetImageAttribute", &err)),
        }
    }

    /// The region's image block public access state (`block-new-sharing` or `unblocked`), or
    /// `None` where the endpoint doesn't answer.
    pub async fn image_block_public_access(&self) -> Result<Option<String>, Error> {
        let result = self
            .ec2()
            .get_image_block_public_access_state()
            .customize()
            .config_override(one_try())
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.image_block_public_access_state().map(str::to_owned)),
            Err(err) if is_server_side(&err) => Ok(None),
            Err(err) => Err(self.error("GetImageBlockPublicAccessState", &err)),
        }
    }

    /// Who may create volumes from each of these snapshots (one DescribeSnapshotAttribute
    /// each, a few at once, paced: EC2 has no batched read of them). Only those shared with
    /// someone are in the answer.
    pub async fn snapshot_sharing_of(
        &self,
        ids: &[SnapshotId],
    ) -> Result<BTreeMap<SnapshotId, SnapshotSharing>, Error> {
        let reads: Vec<Result<SnapshotSharing, Error>> = futures::stream::iter(ids.to_vec())
            .map(|id| async move { self.snapshot_volume_permissions(&id).await })
            .buffer_unordered(CONCURRENT_READS)
            .collect()
            .await;
        let mut shared = BTreeMap::new();
        for read in reads {
            let sharing = read?;
            if sharing.is_shared() {
                shared.insert(sharing.snapshot_id.clone(), sharing);
            }
        }
        Ok(shared)
    }

    /// Who may create volumes from (and so copy) a snapshot: everyone (public) or accounts.
    pub async fn snapshot_volume_permissions(&self, snapshot_id: &SnapshotId) -> Result<SnapshotSharing, Error> {
        let stream = self.streams.of(super::pace::PER_ITEM_READS);
        let output = self
            .streams
            .send(&stream, |config| async move {
                self.ec2()
                    .describe_snapshot_attribute()
                    .snapshot_id(snapshot_id.as_str())
                    .attribute(SnapshotAttributeName::CreateVolumePermission)
                    .customize()
                    .config_override(config)
                    .send()
                    .await
                    .map_err(|err| self.error("DescribeSnapshotAttribute", &err))
            })
            .await?;
        let grants = output.create_volume_permissions();
        Ok(SnapshotSharing {
            snapshot_id: snapshot_id.clone(),
            public: grants.iter().any(|p| p.group() == Some(&PermissionGroup::All)),
            accounts: grants.iter().filter_map(|p| p.user_id()).map(str::to_owned).collect(),
        })
    }

    /// Grants or revokes create-volume permission on a snapshot for accounts, and with
    /// `public` for everyone.
    pub async fn change_snapshot_volume_permissions(
        &self,
        snapshot_id: &SnapshotId,
        change: Change,
        accounts: &[String],
        public: bool,
        dry_run: bool,
    ) -> Result<(), Error> {
        if accounts.is_empty() && !public {
            return Ok(());
        }
        let result = self
            .ec2()
            .modify_snapshot_attribute()
            .snapshot_id(snapshot_id.as_str())
            .attribute(SnapshotAttributeName::CreateVolumePermission)
            .operation_type(match change {
                Change::Grant => OperationType::Add,
                Change::Revoke => OperationType::Remove,
            })
            .set_user_ids((!accounts.is_empty()).then(|| accounts.to_vec()))
            .set_group_names(public.then(|| vec![PermissionGroup::All.as_str().to_owned()]))
            .dry_run(dry_run)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if dry_run && err.code() == Some("DryRunOperation") => Ok(()),
            Err(err) => Err(self.error("ModifySnapshotAttribute", &err)),
        }
    }
}
