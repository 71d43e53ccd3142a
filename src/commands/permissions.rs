//! `amictl permissions`: who may launch an image, shown and changed safely.
//!
//! Every change is checked first (the images exist; nobody grants the owner what it has;
//! public sharing is possible), then made, then read back: the output is what EC2 holds
//! afterwards, not what was asked.

use comfy_table::{Color, Table};
use serde::Serialize;

use super::Context;
use crate::ec2::{Change, Grants, ImageQuery, SnapshotSharing, Support};
use crate::error::Error;
use crate::model::{Image, LaunchPermissions};
use crate::output::{Printer, Render};
use crate::types::{ImageId, SnapshotId};

/// What to do to each image.
#[derive(Debug)]
pub enum Action {
    Show,
    Add(Grants),
    Remove(Grants),
    Public,
    Private,
    Reset,
}

/// What `permissions` was asked (`crate::settings` fills it from the command line, checked).
#[derive(Debug)]
pub struct Request {
    pub action: Action,
    pub image_ids: Vec<ImageId>,
    /// Also change create-volume permission on the images' snapshots.
    pub snapshots: bool,
    pub dry_run: bool,
}

pub async fn run(ctx: &Context<'_>, request: Request) -> anyhow::Result<()> {
    let (shown, failures) = change(ctx, request).await?;
    ctx.printer.print(&shown)?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(failures.join("; ")).into())
    }
}

/// Carries the request out on each image, then reads the permissions back. Failures on one
/// image don't stop the others; they are returned to be reported after the result.
async fn change(ctx: &Context<'_>, request: Request) -> Result<(Shown, Vec<String>), Error> {
    // Also keeps DescribeImageAttribute away from unknown images (moto answers those with a 500).
    let query = ImageQuery {
        image_ids: request.image_ids.clone(),
        include_deprecated: true,
        include_disabled: true,
        ..ImageQuery::default()
    };
    let images = ctx.ec2.describe_images(&query).await?;
    if let Action::Add(grants) = &request.action {
        refuse_granting_the_owner(&images, grants)?;
    }
    if request.snapshots
        && let Action::Add(grants) | Action::Remove(grants) = &request.action
        && (!grants.organization_arns.is_empty() || !grants.organizational_unit_arns.is_empty())
    {
        ctx.printer.warn(
            "snapshots can be shared with accounts only: organizations and OUs get launch permission, not create-volume permission",
        );
    }
    if matches!(request.action, Action::Public) {
        check_block_public_access(ctx).await?;
    }

    let mut failures = Vec::new();
    let mut shown = Vec::new();
    // Images in the order the user named them.
    for id in &request.image_ids {
        let Some(image) = images.iter().find(|i| &i.image_id == id) else {
            continue;
        };
        if let Err(err) = apply(ctx, &request, image).await {
            failures.push(format!("{id}: {err}"));
        }
        match read_back(ctx, image).await {
            Ok(permissions) => shown.push(permissions),
            Err(err) => failures.push(format!("{id}: cannot read its permissions back: {err}")),
        }
    }
    if request.dry_run && failures.is_empty() {
        ctx.printer
            .note("dry run: EC2 says the change can be made; nothing was changed (shown: the permissions as they are)");
    }
    let shown = if request.image_ids.len() == 1 && shown.len() == 1 {
        Shown::One(shown.remove(0))
    } else {
        Shown::Many(shown)
    };
    Ok((shown, failures))
}

/// The owner may always launch its images: a grant to it is a mistake worth pointing out.
fn refuse_granting_the_owner(images: &[Image], grants: &Grants) -> Result<(), Error> {
    for image in images {
        if let Some(owner) = image
            .owner_id
            .as_deref()
            .filter(|o| grants.accounts.iter().any(|a| a == o))
        {
            return Err(Error::Usage(format!(
                "account {owner} owns {} and may already launch it (implicit permission); leave it out",
                image.image_id
            )));
        }
    }
    Ok(())
}

/// Image block public access on (`block-new-sharing`) makes EC2 refuse public sharing.
pub(super) async fn check_block_public_access(ctx: &Context<'_>) -> Result<(), Error> {
    let region = ctx.ec2.region();
    match ctx.ec2.image_block_public_access().await {
        Ok(Some(state)) if state == "block-new-sharing" => Err(Error::Failed(format!(
            "image block public access is on in {region} (block-new-sharing), so EC2 refuses to make images public; \
             share with --account, --org or --ou instead, or turn it off with `aws ec2 disable-image-block-public-access`"
        ))),
        Ok(Some(_)) => Ok(()),
        Ok(None) => {
            ctx.printer.warn(format!(
                "could not check image block public access in {region}: the endpoint does not answer GetImageBlockPublicAccessState; going on"
            ));
            Ok(())
        }
        Err(err) => {
            ctx.printer.warn(format!(
                "could not check image block public access in {region} ({err}); going on"
            ));
            Ok(())
        }
    }
}

/// Why EC2 can't make the image public, where it can't: encrypted snapshots.
pub(super) fn refuses_public(image: &Image) -> Option<String> {
    let encrypted: Vec<&str> = image
        .block_devices
        .iter()
        .filter(|d| d.encrypted == Some(true))
        .filter_map(|d| d.snapshot_id.as_ref().map(SnapshotId::as_str))
        .collect();
    (!encrypted.is_empty()).then(|| {
        format!(
            "its snapshots {} are encrypted, and EC2 can't make an image with encrypted snapshots public; share it with --account instead",
            encrypted.join(", ")
        )
    })
}

async fn apply(ctx: &Context<'_>, request: &Request, image: &Image) -> Result<(), Error> {
    let ec2 = &ctx.ec2;
    let id = &image.image_id;
    let none = Grants::default();
    let dry_run = request.dry_run;
    match &request.action {
        Action::Show => Ok(()),
        Action::Add(grants) => {
            ec2.change_launch_permissions(id, grants, &none, dry_run).await?;
            change_snapshots(ctx, request, image, Change::Grant, &grants.accounts).await
        }
        Action::Remove(grants) => {
            ec2.change_launch_permissions(id, &none, grants, dry_run).await?;
            // Taking sharing away also takes away a public create-volume permission.
            change_snapshots(ctx, request, image, Change::Revoke, &grants.accounts).await
        }
        Action::Public => {
            if let Some(why) = refuses_public(image) {
                return Err(Error::Failed(why));
            }
            let public = Grants {
                public: true,
                ..Grants::default()
            };
            ec2.change_launch_permissions(id, &public, &none, dry_run).await
        }
        Action::Private => {
            let public = Grants {
                public: true,
                ..Grants::default()
            };
            ec2.change_launch_permissions(id, &none, &public, dry_run).await
        }
        Action::Reset => {
            reset(ctx, id, dry_run).await?;
            if request.snapshots {
                for snapshot in &image.snapshot_ids {
                    let sharing = ec2.snapshot_volume_permissions(snapshot).await?;
                    ec2.change_snapshot_volume_permissions(
                        snapshot,
                        Change::Revoke,
                        &sharing.accounts,
                        sharing.public,
                        dry_run,
                    )
                    .await?;
                }
            }
            Ok(())
        }
    }
}

/// ResetImageAttribute, or where the endpoint lacks it, the same by removing every grant.
async fn reset(ctx: &Context<'_>, id: &ImageId, dry_run: bool) -> Result<(), Error> {
    if !dry_run && ctx.ec2.reset_launch_permissions(id).await? == Support::Done {
        return Ok(());
    }
    let everything = Grants::all_of(&ctx.ec2.launch_permissions(id).await?);
    if everything.is_empty() {
        return Ok(());
    }
    ctx.ec2
        .change_launch_permissions(id, &Grants::default(), &everything, dry_run)
        .await
}

async fn change_snapshots(
    ctx: &Context<'_>,
    request: &Request,
    image: &Image,
    change: Change,
    accounts: &[String],
) -> Result<(), Error> {
    if !request.snapshots {
        return Ok(());
    }
    for snapshot in &image.snapshot_ids {
        // Revoking also revokes public create-volume permission: nobody removing sharing
        // wants a snapshot anyone can copy left behind.
        let public = change == Change::Revoke && ctx.ec2.snapshot_volume_permissions(snapshot).await?.public;
        ctx.ec2
            .change_snapshot_volume_permissions(snapshot, change, accounts, public, request.dry_run)
            .await?;
    }
    Ok(())
}

/// The image's launch permissions, and its snapshots that others may create volumes from.
async fn read_back(ctx: &Context<'_>, image: &Image) -> Result<ImagePermissions, Error> {
    let permissions = ctx.ec2.launch_permissions(&image.image_id).await?;
    let mut shared_snapshots = Vec::new();
    for snapshot in &image.snapshot_ids {
        let sharing = ctx.ec2.snapshot_volume_permissions(snapshot).await?;
        if sharing.is_shared() {
            shared_snapshots.push(sharing);
        }
    }
    Ok(ImagePermissions {
        image_id: image.image_id.clone(),
        owner_id: image.owner_id.clone(),
        permissions,
        shared_snapshots,
    })
}

/// One image's launch permissions, as printed.
#[derive(Debug, Serialize)]
struct ImagePermissions {
    image_id: ImageId,
    owner_id: Option<String>,
    #[serde(flatten)]
    permissions: LaunchPermissions,
    /// The image's snapshots that are public or shared (create-volume permission).
    shared_snapshots: Vec<SnapshotSharing>,
}

/// `snap-… public`, `snap-… 111122223333, 444455556666`.
fn snapshot_lines(snapshots: &[SnapshotSharing]) -> Vec<String> {
    snapshots
        .iter()
        .map(|s| {
            let mut whom = s.accounts.clone();
            if s.public {
                whom.insert(0, "public".to_owned());
            }
            format!("{} {}", s.snapshot_id, whom.join(", "))
        })
        .collect()
}

/// One image named: one JSON object; several: an array.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Shown {
    One(ImagePermissions),
    Many(Vec<ImagePermissions>),
}

impl Render for Shown {
    fn tables(&self, printer: &Printer) -> Vec<Table> {
        let rows = match self {
            Shown::One(one) => std::slice::from_ref(one),
            Shown::Many(many) => many.as_slice(),
        };
        if rows.is_empty() {
            return Vec::new();
        }
        let mut table = printer.table(&[
            "IMAGE ID",
            "OWNER (IMPLICIT)",
            "PUBLIC",
            "ACCOUNTS",
            "ORGANIZATIONS",
            "OUs",
            "SHARED SNAPSHOTS",
        ]);
        let list = |items: &[String]| {
            if items.is_empty() {
                "-".to_owned()
            } else {
                items.join("\n")
            }
        };
        for row in rows {
            let p = &row.permissions;
            table.add_row(vec![
                printer.colored(&row.image_id, None),
                printer.colored(row.owner_id.as_deref().unwrap_or("-"), None),
                printer.colored(if p.public { "yes" } else { "no" }, p.public.then_some(Color::Yellow)),
                printer.colored(list(&p.accounts), None),
                printer.colored(list(&p.organization_arns), None),
                printer.colored(list(&p.organizational_unit_arns), None),
                printer.colored(list(&snapshot_lines(&row.shared_snapshots)), None),
            ]);
        }
        vec![table]
    }
}

#[cfg(test)]
mod tests {
    //! moto can't turn image block public access on, nor make encrypted snapshots, so those
    //! refusals of `public` are tested here.

    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::operation::describe_image_attribute::DescribeImageAttributeOutput;
    use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ec2::operation::describe_snapshot_attribute::DescribeSnapshotAttributeOutput;
    use aws_sdk_ec2::operation::get_image_block_public_access_state::GetImageBlockPublicAccessStateOutput;
    use aws_sdk_ec2::operation::modify_image_attribute::ModifyImageAttributeOutput;
    use aws_sdk_ec2::types as sdk;
    use aws_smithy_mocks::{Rule, RuleMode, mock};

    use super::*;
    use crate::ec2::mock::mock_ec2;

    const IMAGE: &str = "ami-0123456789abcdef0";

    /// `permissions public IMAGE --yes`.
    fn public_request() -> Request {
        Request {
            action: Action::Public,
            image_ids: vec![IMAGE.parse().unwrap()],
            snapshots: false,
            dry_run: false,
        }
    }

    fn image(encrypted: bool) -> Rule {
        mock!(Client::describe_images).then_output(move || {
            DescribeImagesOutput::builder()
                .images(
                    sdk::Image::builder()
                        .image_id(IMAGE)
                        .owner_id("123456789012")
                        .block_device_mappings(
                            sdk::BlockDeviceMapping::builder()
                                .device_name("/dev/xvda")
                                .ebs(
                                    sdk::EbsBlockDevice::builder()
                                        .snapshot_id("snap-0123456789abcdef0")
                                        .volume_size(8)
                                        .encrypted(encrypted)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
    }

    fn block_public_access(state: &'static str) -> Rule {
        mock!(Client::get_image_block_public_access_state).then_output(move || {
            GetImageBlockPublicAccessStateOutput::builder()
                .image_block_public_access_state(state)
                .build()
        })
    }

    fn read_back() -> Rule {
        mock!(Client::describe_image_attribute).then_output(|| DescribeImageAttributeOutput::builder().build())
    }

    fn read_back_snapshot() -> Rule {
        mock!(Client::describe_snapshot_attribute).then_output(|| DescribeSnapshotAttributeOutput::builder().build())
    }

    fn modify() -> Rule {
        mock!(Client::modify_image_attribute).then_output(|| ModifyImageAttributeOutput::builder().build())
    }

    fn context(rules: &[&Rule]) -> Context<'static> {
        Context::for_tests(mock_ec2(RuleMode::MatchAny, rules))
    }

    #[tokio::test]
    async fn public_is_refused_while_image_block_public_access_is_on() {
        let modify = modify();
        let ctx = context(&[
            &image(false),
            &block_public_access("block-new-sharing"),
            &read_back(),
            &read_back_snapshot(),
            &modify,
        ]);

        let err = change(&ctx, public_request()).await.unwrap_err();

        assert!(
            err.to_string().contains("image block public access is on in eu-west-1"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
        assert_eq!(modify.num_calls(), 0, "nothing was shared");
    }

    #[tokio::test]
    async fn public_is_refused_for_an_image_with_encrypted_snapshots() {
        let modify = modify();
        let ctx = context(&[
            &image(true),
            &block_public_access("unblocked"),
            &read_back(),
            &read_back_snapshot(),
            &modify,
        ]);

        let (_, failures) = change(&ctx, public_request()).await.unwrap();

        assert_eq!(failures.len(), 1);
        assert!(
            failures[0].contains("snap-0123456789abcdef0 are encrypted"),
            "{failures:?}"
        );
        assert_eq!(modify.num_calls(), 0, "nothing was shared");
    }

    #[tokio::test]
    async fn public_goes_ahead_when_sharing_is_unblocked() {
        let modify = modify();
        let ctx = context(&[
            &image(false),
            &block_public_access("unblocked"),
            &read_back(),
            &read_back_snapshot(),
            &modify,
        ]);

        let (shown, failures) = change(&ctx, public_request()).await.unwrap();

        assert!(failures.is_empty(), "{failures:?}");
        assert!(matches!(shown, Shown::One(_)));
        assert_eq!(modify.num_calls(), 1);
    }
}
