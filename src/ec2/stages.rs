//! The stages between "in use" and "deregistered": deprecation, deregistration protection,
//! disabling, the Recycle Bin, and the tags amictl keeps on an image it disabled.
//!
//! Not every endpoint offers these actions: each is tried once, and an endpoint that doesn't
//! know it is said so in one line (exit 1), not retried for seconds.

use std::collections::BTreeMap;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use jiff::Timestamp;

use super::errors::{not_offered, send_probing};
use super::{Ec2, one_try};
use crate::error::Error;
use crate::types::ImageId;

impl Ec2 {
    /// Sends an action not every endpoint offers: once, then (if the endpoint knows it but
    /// something transient happened) with the usual retries.
    async fn stage_action<T, E, F, Fut>(&self, action: &'static str, send: F) -> Result<T, Error>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        F: Fn(bool) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    {
        send_probing(true, send).await.map_err(|err| match not_offered(&err) {
            Some(why) => Error::Failed(format!(
                "the endpoint {} does not support {action} ({why}); nothing was changed",
                self.endpoint
            )),
            None => self.error(action, &err),
        })
    }

    /// Schedules the image's deprecation (EnableImageDeprecation), or cancels it (`None`:
    /// DisableImageDeprecation).
    pub async fn set_deprecation(&self, id: &ImageId, at: Option<Timestamp>) -> Result<(), Error> {
        match at {
            Some(at) => {
                let at = aws_sdk_ec2::primitives::DateTime::from_secs(at.as_second());
                self.stage_action("EnableImageDeprecation", |once| {
                    once_or_retried!(
                        once,
                        self.ec2()
                            .enable_image_deprecation()
                            .image_id(id.as_str())
                            .deprecate_at(at)
                    )
                })
                .await?;
            }
            None => {
                self.stage_action("DisableImageDeprecation", |once| {
                    once_or_retried!(once, self.ec2().disable_image_deprecation().image_id(id.as_str()))
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Turns deregistration protection on (`Some(cooldown)`) or off (`None`).
    pub async fn set_protection(&self, id: &ImageId, on: Option<bool>) -> Result<(), Error> {
        match on {
            Some(cooldown) => {
                self.stage_action("EnableImageDeregistrationProtection", |once| {
                    once_or_retried!(
                        once,
                        self.ec2()
                            .enable_image_deregistration_protection()
                            .image_id(id.as_str())
                            .with_cooldown(cooldown)
                    )
                })
                .await?;
            }
            None => {
                self.stage_action("DisableImageDeregistrationProtection", |once| {
                    once_or_retried!(
                        once,
                        self.ec2()
                            .disable_image_deregistration_protection()
                            .image_id(id.as_str())
                    )
                })
                .await?;
            }
        }
        Ok(())
    }

    /// DisableImage: nothing can launch the image, and EC2 removes its launch permissions.
    pub async fn disable_image(&self, id: &ImageId) -> Result<(), Error> {
        self.stage_action("DisableImage", |once| {
            once_or_retried!(once, self.ec2().disable_image().image_id(id.as_str()))
        })
        .await?;
        Ok(())
    }

    /// EnableImage: the image can be launched again (by its owner: permissions stay gone).
    pub async fn enable_image(&self, id: &ImageId) -> Result<(), Error> {
        self.stage_action("EnableImage", |once| {
            once_or_retried!(once, self.ec2().enable_image().image_id(id.as_str()))
        })
        .await?;
        Ok(())
    }

    /// RestoreImageFromRecycleBin.
    pub async fn restore_image(&self, id: &ImageId) -> Result<(), Error> {
        self.stage_action("RestoreImageFromRecycleBin", |once| {
            once_or_retried!(once, self.ec2().restore_image_from_recycle_bin().image_id(id.as_str()))
        })
        .await?;
        Ok(())
    }

    /// RestoreSnapshotFromRecycleBin.
    pub async fn restore_snapshot(&self, id: &crate::types::SnapshotId) -> Result<(), Error> {
        self.stage_action("RestoreSnapshotFromRecycleBin", |once| {
            once_or_retried!(
                once,
                self.ec2().restore_snapshot_from_recycle_bin().snapshot_id(id.as_str())
            )
        })
        .await?;
        Ok(())
    }

    /// Tags an image (CreateTags).
    pub async fn tag_image(&self, id: &ImageId, tags: &BTreeMap<String, String>) -> Result<(), Error> {
        if tags.is_empty() {
            return Ok(());
        }
        self.ec2()
            .create_tags()
            .resources(id.as_str())
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|err| self.error("CreateTags", &err))?;
        Ok(())
    }

    /// Removes tags from an image (DeleteTags), whatever their values.
    pub async fn untag_image(&self, id: &ImageId, keys: &[String]) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        self.ec2()
            .delete_tags()
            .resources(id.as_str())
            .set_tags(Some(
                keys.iter()
                    .map(|k| aws_sdk_ec2::types::Tag::builder().key(k).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|err| self.error("DeleteTags", &err))?;
        Ok(())
    }
}
