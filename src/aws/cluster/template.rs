//! The executor's calls for the launch template: created with its first version, a
//! new version (made the default) for a cluster or node change, deleted last.

use aws_sdk_ec2::types as ec2;

use super::{ROOT_DEVICE, Result};
use crate::aws::error;
use crate::aws::executor::{Executor, created, deleting, sent};
use crate::config::Layer;
use crate::plan::LogicalId;
use crate::plan::Observed;
use crate::plan::spec::{Disk, LaunchTemplate};

fn mapping(device: &str, disk: &Disk, keep: bool) -> ec2::LaunchTemplateBlockDeviceMappingRequest {
    let ebs = ec2::LaunchTemplateEbsBlockDeviceRequest::builder()
        .volume_size(i32::try_from(disk.size_gb).unwrap_or(i32::MAX))
        .volume_type(ec2::VolumeType::from(disk.volume_type.as_str()))
        .delete_on_termination(!keep)
        .build();
    ec2::LaunchTemplateBlockDeviceMappingRequest::builder()
        .device_name(device)
        .ebs(ebs)
        .build()
}

impl Executor<'_> {
    /// Tags for instances and volumes launched from the template: the environment and
    /// layer, with `Name` = `<environment>-instance`.
    fn launched_tags(
        &self,
        resource: ec2::ResourceType,
    ) -> ec2::LaunchTemplateTagSpecificationRequest {
        let tags = self
            .tags(&LogicalId::Launched, Layer::Cluster)
            .into_iter()
            .map(|(k, v)| ec2::Tag::builder().key(k).value(v).build())
            .collect();
        ec2::LaunchTemplateTagSpecificationRequest::builder()
            .resource_type(resource)
            .set_tags(Some(tags))
            .build()
    }

    fn template_data(&self, template: &LaunchTemplate) -> ec2::RequestLaunchTemplateData {
        let groups = template
            .security_groups
            .iter()
            .map(|g| self.id(g))
            .collect();
        let mut data = ec2::RequestLaunchTemplateData::builder()
            .image_id(&template.image)
            .instance_type(ec2::InstanceType::from(template.instance_type.as_str()))
            .set_security_group_ids(Some(groups))
            .user_data(&template.user_data)
            // IMDSv2 only: no instance answers metadata requests without a session token.
            .metadata_options(
                ec2::LaunchTemplateInstanceMetadataOptionsRequest::builder()
                    .http_tokens(ec2::LaunchTemplateHttpTokensState::Required)
                    .http_endpoint(ec2::LaunchTemplateInstanceMetadataEndpointState::Enabled)
                    .build(),
            )
            .tag_specifications(self.launched_tags(ec2::ResourceType::Instance))
            .tag_specifications(self.launched_tags(ec2::ResourceType::Volume));
        if let Some(root) = &template.volume {
            data = data.block_device_mappings(mapping(ROOT_DEVICE, root, false));
        }
        // The data volume outlives its instance, so a replaced instance never takes the
        // data with it.
        if let Some(volume) = &template.data_volume {
            data = data.block_device_mappings(mapping(&volume.device, &volume.disk, true));
        }
        if let Some(profile) = &template.instance_profile {
            data = data.iam_instance_profile(
                ec2::LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                    .name(profile)
                    .build(),
            );
        }
        data.build()
    }

    /// Creates the launch template with its first version, which instances and the
    /// group then launch from.
    pub(crate) async fn create_launch_template(
        &mut self,
        template: &LaunchTemplate,
    ) -> Result<String> {
        let what = format!("creating launch template {}", template.name);
        let out = self
            .aws
            .ec2
            .create_launch_template()
            .launch_template_name(&template.name)
            .launch_template_data(self.template_data(template))
            .tag_specifications(self.tag_spec(
                ec2::ResourceType::LaunchTemplate,
                &LogicalId::LaunchTemplate,
                Layer::Cluster,
            ))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let made = out.launch_template();
        let id = created(&what, made.and_then(|t| t.launch_template_id()))?;
        self.template_version = Some(made.and_then(|t| t.latest_version_number()).unwrap_or(1));
        Ok(id)
    }

    /// Adds a version with `template`'s settings and user data and makes it the
    /// default; instances and the group launch from it from now on.
    pub async fn new_template_version(&mut self, template: &LaunchTemplate) -> Result<()> {
        let id = self.id(&LogicalId::LaunchTemplate);
        let what = format!("adding a version to launch template {id}");
        let out = self
            .aws
            .ec2
            .create_launch_template_version()
            .launch_template_id(&id)
            .launch_template_data(self.template_data(template))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let version = out
            .launch_template_version()
            .and_then(|v| v.version_number());
        let version = version.ok_or_else(|| {
            crate::aws::AwsError::new(
                &what,
                "MissingVersion",
                "AWS answered without the new version's number",
                None,
            )
        })?;
        self.aws
            .ec2
            .modify_launch_template()
            .launch_template_id(&id)
            .default_version(version.to_string())
            .send()
            .await
            .map_err(|e| error(format!("{what}: making version {version} the default"), e))?;
        self.template_version = Some(version);
        self.template_renewed = true;
        Ok(())
    }

    /// Makes `version` the one instances and the group launch from (the latest
    /// observed before the run) unless this run makes another.
    pub fn use_template_version(&mut self, version: i64) {
        self.template_version.get_or_insert(version);
    }

    /// The template version the group and new instances launch from: the one made in
    /// this run, else the latest observed, else (for an observed group) the one it
    /// names.
    pub(super) fn template_version(&self, group_names: Option<&str>) -> String {
        match (self.template_version, group_names) {
            (Some(version), _) => version.to_string(),
            (None, Some(named)) => named.to_owned(),
            (None, None) => "1".to_owned(),
        }
    }

    pub(crate) async fn delete_launch_template(&mut self, o: &Observed) -> Result<()> {
        let what = deleting(o);
        let call = self
            .aws
            .ec2
            .delete_launch_template()
            .launch_template_id(&o.aws_id);
        sent(&what, call.send()).await.map(drop)
    }
}
