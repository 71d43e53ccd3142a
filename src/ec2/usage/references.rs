//! What EC2 itself knows of images: the resources that reference them
//! (DescribeImageReferences) and the images in the Recycle Bin (ListImagesInRecycleBin).
//! Not every endpoint offers these: the first request is tried once, and an endpoint that
//! doesn't know it is told apart from one that refuses the caller.

use aws_sdk_ec2::types::{
    ImageReferenceOptionName, ImageReferenceResourceType, ResourceTypeOption, ResourceTypeRequest,
};
use futures::StreamExt;

use super::super::errors::{not_offered, send_probing};
use super::super::{Ec2, one_try};
use crate::error::Error;
use crate::model::{BinnedImage, BinnedSnapshot, ImageUser, RecycleBin, UserKind};
use crate::types::{ImageId, SnapshotId};

/// DescribeImageReferences takes at most this many images.
const IMAGES_PER_READ: usize = 10;
/// ListImagesInRecycleBin takes at most this many image IDs.
const IMAGES_PER_BIN_READ: usize = 20;
/// Reads of image references in flight at once.
const CONCURRENT_READS: usize = 8;

impl Ec2 {
    /// What EC2 says references these images: instances (not terminated), launch template
    /// versions, SSM parameters, Image Builder recipes. Where the endpoint doesn't offer it,
    /// nothing, with a note why (the scans answer for what they cover).
    pub(super) async fn image_references(
        &self,
        image_ids: &[ImageId],
    ) -> Result<(Vec<(String, ImageUser)>, Vec<String>), Error> {
        let mut chunks = image_ids.chunks(IMAGES_PER_READ);
        let Some(first) = chunks.next() else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut found = match self.references_of(first, true).await {
            Ok(found) => found,
            Err(Probe::NotOffered(why)) => {
                return Ok((
                    Vec::new(),
                    vec![format!(
                        "DescribeImageReferences: {why}; the scans of instances, templates, groups, fleets and SSM parameters are the answer (Image Builder recipes are not checked)"
                    )],
                ));
            }
            Err(Probe::Failed(err)) => return Err(err),
        };
        let rest: Vec<_> = futures::stream::iter(chunks.map(<[ImageId]>::to_vec).collect::<Vec<_>>())
            .map(|chunk| async move { self.references_of(&chunk, false).await })
            .buffer_unordered(CONCURRENT_READS)
            .collect()
            .await;
        for read in rest {
            match read {
                Ok(more) => found.extend(more),
                Err(Probe::Failed(err)) => return Err(err),
                Err(Probe::NotOffered(why)) => {
                    return Err(Error::Failed(format!(
                        "DescribeImageReferences failed in {}: {why}; run again",
                        self.region
                    )));
                }
            }
        }
        Ok((found, Vec::new()))
    }

    /// One read of up to ten images, every page; `probe`: the first request is tried once.
    async fn references_of(&self, image_ids: &[ImageId], probe: bool) -> Result<Vec<(String, ImageUser)>, Probe> {
        let not_terminated = ResourceTypeOption::builder()
            .option_name(ImageReferenceOptionName::StateName)
            .set_option_values(Some(crate::ec2::instances::NOT_TERMINATED.map(str::to_owned).to_vec()))
            .build();
        let kinds = [
            ImageReferenceResourceType::Ec2LaunchTemplate,
            ImageReferenceResourceType::SsmParameter,
            ImageReferenceResourceType::ImageBuilderImageRecipe,
            ImageReferenceResourceType::ImageBuilderContainerRecipe,
        ];
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        let mut first = probe;
        loop {
            let mut request = self
                .ec2()
                .describe_image_references()
                .set_image_ids(Some(image_ids.iter().map(ToString::to_string).collect()))
                .resource_types(
                    ResourceTypeRequest::builder()
                        .resource_type(ImageReferenceResourceType::Ec2Instance)
                        .resource_type_options(not_terminated.clone())
                        .build(),
                )
                .set_next_token(token.clone());
            for kind in &kinds {
                request = request.resource_types(ResourceTypeRequest::builder().resource_type(kind.clone()).build());
            }
            let page = if first {
                // The probe: is the action offered at all?
                let result = send_probing(true, |once| once_or_retried!(once, request.clone())).await;
                result.map_err(|err| match not_offered(&err) {
                    Some(why) => Probe::NotOffered(why),
                    None => Probe::Failed(self.error("DescribeImageReferences", &err)),
                })?
            } else {
                // Offered: paced as the account's DescribeImageReferences stream.
                let stream = self.streams.of("DescribeImageReferences");
                self.streams
                    .send(&stream, |config| {
                        let request = request.clone();
                        async move {
                            request
                                .customize()
                                .config_override(config)
                                .send()
                                .await
                                .map_err(|err| self.error("DescribeImageReferences", &err))
                        }
                    })
                    .await
                    .map_err(Probe::Failed)?
            };
            first = false;
            for reference in page.image_references() {
                if let (Some(image), Some(arn)) = (reference.image_id(), reference.arn()) {
                    found.push((image.to_owned(), ImageUser::new(UserKind::Reference, arn)));
                }
            }
            match self
                .page_after("DescribeImageReferences", token.as_deref(), page.next_token())
                .map_err(Probe::Failed)?
            {
                Some(next) => token = Some(next),
                None => return Ok(found),
            }
        }
    }

    /// The images in the Recycle Bin (their snapshots are not orphans: a restored image needs
    /// them). `NotOffered` where the endpoint doesn't have the Recycle Bin.
    pub async fn recycle_bin(&self) -> Result<RecycleBin, Error> {
        Ok(match self.recycle_bin_entries(&[]).await? {
            Some(entries) => RecycleBin::Images(entries.into_iter().map(|e| e.image_id).collect()),
            None => RecycleBin::NotOffered,
        })
    }

    /// The images in the Recycle Bin (only these, when `ids` names any), with when each
    /// entered and leaves it; `None` where the endpoint doesn't have the Recycle Bin.
    pub async fn recycle_bin_entries(&self, ids: &[ImageId]) -> Result<Option<Vec<BinnedImage>>, Error> {
        use std::sync::atomic::Ordering;
        if self.recycle_bin.load(Ordering::Relaxed) == BIN_NOT_OFFERED {
            return Ok(None);
        }
        let mut entries = Vec::new();
        // Only the very first request is the probe.
        let mut probe = true;
        for chunk in ids
            .chunks(IMAGES_PER_BIN_READ)
            .map(Some)
            .chain(ids.is_empty().then_some(None))
        {
            let mut token: Option<String> = None;
            loop {
                let mut request = self.ec2().list_images_in_recycle_bin().set_next_token(token.clone());
                request = match chunk {
                    Some(chunk) => request.set_image_ids(Some(chunk.iter().map(|i| i.as_str().to_owned()).collect())),
                    None => request.max_results(1000),
                };
                let result = send_probing(probe, |once| once_or_retried!(once, request.clone())).await;
                let page = match result {
                    Ok(page) => page,
                    Err(err) if probe && not_offered(&err).is_some() => {
                        self.recycle_bin.store(BIN_NOT_OFFERED, Ordering::Relaxed);
                        return Ok(None);
                    }
                    Err(err) => return Err(self.error("ListImagesInRecycleBin", &err)),
                };
                probe = false;
                self.recycle_bin.store(BIN_OFFERED, Ordering::Relaxed);
                entries.extend(page.images().iter().filter_map(BinnedImage::from_ec2));
                match self.page_after("ListImagesInRecycleBin", token.as_deref(), page.next_token())? {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        }
        Ok(Some(entries))
    }
}

/// What an endpoint has said of the Recycle Bin ([`Ec2`]'s `recycle_bin`; 0: nothing yet).
const BIN_OFFERED: u8 = 1;
const BIN_NOT_OFFERED: u8 = 2;

impl Ec2 {
    /// Whether the Recycle Bin holds this image (`Ok(None)`: the endpoint has no bin). Asked
    /// once per image a cleanup deregisters: once the endpoint is known to have the bin, paced
    /// as the account's ListImagesInRecycleBin stream, so that a throttled read waits for its
    /// slot rather than backing off.
    pub async fn recycle_bin_entry(&self, id: &ImageId) -> Result<Option<Option<BinnedImage>>, Error> {
        use std::sync::atomic::Ordering;
        if self.recycle_bin.load(Ordering::Relaxed) != BIN_OFFERED {
            let entries = self.recycle_bin_entries(std::slice::from_ref(id)).await?;
            return Ok(entries.map(|found| found.into_iter().find(|e| &e.image_id == id)));
        }
        let stream = self.streams.of(super::super::pace::PER_ITEM_READS);
        let page = self
            .streams
            .send(&stream, |config| async move {
                self.ec2()
                    .list_images_in_recycle_bin()
                    .image_ids(id.as_str())
                    .customize()
                    .config_override(config)
                    .send()
                    .await
                    .map_err(|err| self.error("ListImagesInRecycleBin", &err))
            })
            .await?;
        Ok(Some(
            page.images()
                .iter()
                .filter_map(BinnedImage::from_ec2)
                .find(|e| &e.image_id == id),
        ))
    }

    /// The snapshots in the Recycle Bin (only these, when `ids` names any), with what they
    /// were made for; `None` where the endpoint doesn't have the Recycle Bin.
    pub async fn snapshot_bin_entries(&self, ids: &[SnapshotId]) -> Result<Option<Vec<BinnedSnapshot>>, Error> {
        let mut entries = Vec::new();
        let mut probe = true;
        let mut token: Option<String> = None;
        loop {
            let mut request = self.ec2().list_snapshots_in_recycle_bin().set_next_token(token.clone());
            request = if ids.is_empty() {
                request.max_results(1000)
            } else {
                request.set_snapshot_ids(Some(ids.iter().map(|i| i.as_str().to_owned()).collect()))
            };
            let page = match send_probing(probe, |once| once_or_retried!(once, request.clone())).await {
                Ok(page) => page,
                Err(err) if probe && not_offered(&err).is_some() => return Ok(None),
                Err(err) => return Err(self.error("ListSnapshotsInRecycleBin", &err)),
            };
            probe = false;
            entries.extend(page.snapshots().iter().filter_map(|s| {
                Some(BinnedSnapshot {
                    snapshot_id: SnapshotId::from_ec2(s.snapshot_id()?),
                    description: s.description().map(str::to_owned),
                    recycle_bin_exit_time: s
                        .recycle_bin_exit_time()
                        .and_then(|t| jiff::Timestamp::from_second(t.secs()).ok()),
                })
            }));
            match self.page_after("ListSnapshotsInRecycleBin", token.as_deref(), page.next_token())? {
                Some(next) => token = Some(next),
                None => return Ok(Some(entries)),
            }
        }
    }
}

/// How a first request of an action not every endpoint offers ended.
enum Probe {
    NotOffered(String),
    Failed(Error),
}
