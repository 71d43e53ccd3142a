//! A name already taken: someone else's image (an error naming it), or the image this run's
//! own CreateImage made before a retry of it was told the name is taken (adopted).

use jiff::{SignedDuration, Timestamp};

use super::super::Context;
use crate::ec2::{CreatedImage, ImageSpec};
use crate::error::Error;
use crate::model::Image;

pub fn duplicate_name(name: &str, existing: &Image) -> Error {
    Error::Failed(format!(
        "an image named '{name}' already exists: {}; nothing was created. Choose another --name (e.g. add {{timestamp}})",
        existing.image_id
    ))
}

/// The error for a name someone else's image has, naming that image where it is visible.
pub async fn taken(ctx: &Context<'_>, name: &str) -> Error {
    match ctx.ec2.own_images_named(name).await {
        Ok(images) => match images.first() {
            Some(existing) => duplicate_name(name, existing),
            None => not_visible(name),
        },
        Err(err) => err,
    }
}

pub fn not_visible(name: &str) -> Error {
    Error::Failed(format!(
        "EC2 says an image named '{name}' already exists, but it is not visible to this account; choose another --name"
    ))
}

/// CreateImage has no idempotency token: when the SDK retried a CreateImage whose first try
/// did succeed, the retry meets the image that try made. Only then (see
/// [`Creation::TakenOnRetry`]) is an image adopted: same name, same instance, seconds old.
pub async fn adopt_retried(ctx: &Context<'_>, spec: &ImageSpec, started: Timestamp) -> Result<CreatedImage, Error> {
    let images = ctx.ec2.own_images_named(&spec.name).await?;
    let since = started - SignedDuration::from_mins(2);
    let ours = images.iter().find(|image| {
        image.source_instance_id.as_deref() == Some(spec.instance_id.as_str())
            && image.creation_date.is_some_and(|created| created >= since)
    });
    match ours {
        Some(image) => {
            ctx.printer.note(format!(
                "CreateImage was retried and met the image its first try made: {}",
                image.image_id
            ));
            Ok(CreatedImage {
                image_id: image.image_id.clone(),
                // Whether the first try tagged the snapshots is unknown; tagging is idempotent.
                snapshot_tags_applied: spec.snapshot_tags.is_empty(),
            })
        }
        None => Err(match images.first() {
            Some(existing) => duplicate_name(&spec.name, existing),
            None => not_visible(&spec.name),
        }),
    }
}
