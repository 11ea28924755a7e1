//! A fixed-size cluster node's data volume: observed with its attachment; created in
//! its node's zone, grown or retyped in place, attached to the node's instance of the
//! moment, deleted only with consent.

use std::collections::BTreeMap;

use aws_sdk_ec2::types as ec2;

use super::Result;
use crate::aws::executor::{Executor, Seen, client_token, created, deleting, sent};
use crate::aws::read::{ec2_tags, parsed, required};
use crate::aws::{AwsError, error};
use crate::config::Layer;
use crate::plan::LogicalId;
use crate::plan::spec::{Attachment, Volume};
use crate::plan::{Kind, Live, Observed, Spec, TAG_ENVIRONMENT, TAG_ID};

/// The data volumes among `volumes`, each with its environment; `instances` maps the
/// AWS id of an instance to its logical id, to name what a volume is attached to.
pub(super) fn observed(
    volumes: &[ec2::Volume],
    instances: &BTreeMap<&str, LogicalId>,
) -> Result<Vec<(String, Observed)>> {
    let mut out = Vec::new();
    for v in volumes {
        let tags = ec2_tags(v.tags());
        let (Some(env), Some(id)) = (tags.get(TAG_ENVIRONMENT), tags.get(TAG_ID)) else {
            continue;
        };
        let id = LogicalId::parse(id);
        // A node's volume, or one a group's instance left behind (unattached, kept for
        // recovery): plans never touch the latter, drift reports it.
        let left_behind = id == LogicalId::Launched && v.attachments().is_empty();
        if !matches!(id, LogicalId::Volume(_)) && !left_behind {
            continue;
        }
        let aws_id = required(v.volume_id(), "a volume", "id")?;
        let attached_to = v.attachments().first().and_then(|a| {
            let instance = a.instance_id()?;
            Some(Attachment {
                instance: instances
                    .get(instance)
                    .cloned()
                    .unwrap_or_else(|| LogicalId::parse(instance)),
                device: a.device()?.to_owned(),
            })
        });
        let spec = Spec::Volume(Volume {
            zone: parsed(v.availability_zone(), aws_id, "availability zone")?,
            size_gb: required(v.size().and_then(|s| u32::try_from(s).ok()), aws_id, "size")?,
            volume_type: required(v.volume_type(), aws_id, "type")?
                .as_str()
                .to_owned(),
            attached_to,
        });
        let observed = Observed {
            kind: Kind::Volume,
            id,
            aws_id: aws_id.to_owned(),
            spec,
            tags: tags.clone(),
            live: Live::Nothing,
        };
        out.push((env.clone(), observed));
    }
    Ok(out)
}

impl Executor<'_> {
    /// Creates a node's data volume in its zone and waits until it can be attached.
    pub(crate) async fn create_volume(
        &mut self,
        id: &LogicalId,
        volume: &Volume,
    ) -> Result<String> {
        let what = format!("creating data volume {id} in {}", volume.zone);
        let out = self
            .aws
            .ec2
            .create_volume()
            .availability_zone(volume.zone.as_str())
            .size(i32::try_from(volume.size_gb).unwrap_or(i32::MAX))
            .volume_type(ec2::VolumeType::from(volume.volume_type.as_str()))
            .tag_specifications(self.tag_spec(ec2::ResourceType::Volume, id, Layer::Cluster))
            .client_token(client_token(self.env, &id.to_string()))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let volume_id = created(&what, out.volume_id())?;
        self.ids.insert(id.clone(), volume_id.clone());
        self.await_volume(id, &volume_id, ec2::VolumeState::Available)
            .await?;
        Ok(volume_id)
    }

    /// Grows a data volume or changes its type in place; its attachment is restored
    /// with the instances.
    pub(crate) async fn modify_volume(
        &mut self,
        observed: &Observed,
        volume: &Volume,
        was: &Volume,
    ) -> Result<()> {
        if volume.size_gb == was.size_gb && volume.volume_type == was.volume_type {
            return Ok(());
        }
        let mut request = self.aws.ec2.modify_volume().volume_id(&observed.aws_id);
        if volume.size_gb != was.size_gb {
            request = request.size(i32::try_from(volume.size_gb).unwrap_or(i32::MAX));
        }
        if volume.volume_type != was.volume_type {
            request = request.volume_type(ec2::VolumeType::from(volume.volume_type.as_str()));
        }
        let what = format!(
            "modifying data volume {} ({})",
            observed.id, observed.aws_id
        );
        request.send().await.map(drop).map_err(|e| error(&what, e))
    }

    /// Attaches data volume `volume` (logical id), when it exists, to `instance` at
    /// `device` once the volume is free, and waits until it is in use.
    pub async fn attach_volume(
        &mut self,
        volume: &LogicalId,
        instance: &str,
        device: &str,
    ) -> Result<()> {
        let Some(id) = self.ids.get(volume).cloned() else {
            return Ok(());
        };
        self.await_volume(volume, &id, ec2::VolumeState::Available)
            .await?;
        let what = format!("attaching data volume {volume} ({id}) to {instance} at {device}");
        self.aws
            .ec2
            .attach_volume()
            .volume_id(&id)
            .instance_id(instance)
            .device(device)
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        self.await_volume(volume, &id, ec2::VolumeState::InUse)
            .await
    }

    pub(crate) async fn delete_volume(&mut self, o: &Observed) -> Result<()> {
        let what = deleting(o);
        let call = self.aws.ec2.delete_volume().volume_id(&o.aws_id);
        sent(&what, call.send()).await.map(drop)
    }

    /// Waits for a volume to reach `wanted`; a volume in the error state stops the wait.
    async fn await_volume(
        &mut self,
        logical: &LogicalId,
        id: &str,
        wanted: ec2::VolumeState,
    ) -> Result<()> {
        let aws = self.aws;
        let subject = format!("data volume {logical} ({id})");
        let look = async || {
            let out = aws
                .ec2
                .describe_volumes()
                .volume_ids(id)
                .send()
                .await
                .map_err(|e| error(format!("reading {subject}"), e))?;
            match out.volumes().first().and_then(|v| v.state()) {
                Some(state) if *state == wanted => Ok(Seen::Ready(())),
                Some(ec2::VolumeState::Error) => Err(AwsError::new(
                    format!("waiting for {subject}"),
                    "VolumeError",
                    "the volume is in state error",
                    Some("check the volume in the EC2 console; its data may need restoring from a snapshot".into()),
                )),
                Some(state) => Ok(Seen::Pending(state.as_str().to_owned())),
                None => Ok(Seen::Pending("not listed".to_owned())),
            }
        };
        let bound = self.timeout;
        self.wait_until(&subject, wanted.as_str(), bound, look)
            .await
    }
}
