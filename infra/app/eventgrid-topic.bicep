// Event Grid system topic on the image factory resource group. Resource Manager publishes every
// write/action/delete in the group to it; Image Builder has no event type of its own, so a template
// run arrives as Microsoft.Resources.ResourceAction* with operationName .../imageTemplates/run/action.
// Deployed into the image factory group (the topic's source); resource-group topics are global.
// Its system-assigned identity writes dead-lettered events to the governance account (rbac.bicep).
param name string
param tags object = {}

@description('Put a CanNotDelete lock on the topic (see below). Only for throw-away test factories should this be false.')
param deleteLock bool = true

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: resourceGroup().id
    topicType: 'Microsoft.Resources.ResourceGroups'
  }
}

// Tripwire for the image factory group: a group that contains a locked resource cannot be deleted.
// Older `azd down` versions delete every resource group a deployment touched, which here would
// include the image factory group with the production galleries. The lock makes that fail instead,
// without restricting the builders' own work on templates and image versions.
resource topicLock 'Microsoft.Authorization/locks@2020-05-01' = if (deleteLock) {
  name: 'do-not-delete-image-factory'
  scope: topic
  properties: {
    level: 'CanNotDelete'
    notes: 'Golden image governance: protects the image factory resource group from tooling that deletes whole groups (azd down). Remove deliberately before retiring this topic.'
  }
}

output name string = topic.name
output id string = topic.id
output principalId string = topic.identity.principalId
