// Golden image governance: everything `azd up` provisions.
//
// Two resource groups are involved:
// - the app's own group (created here, `rg-<environment>`): function app, its identity, storage,
//   monitoring, and the Key Vault holding the audit digest signing key;
// - the image factory's group (existing, owned by the image builders): Image Builder templates and the
//   staging/production Compute Galleries. The app only observes it: an Event Grid system topic (with
//   its event subscription and a delete lock) and one narrowly scoped custom role are all it adds there.
// Keeping the governance app out of the factory's group means whoever can change the factory cannot
// change the governance app or its audit storage (separation of duties).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; seeds resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region for the app\'s resources. Must offer the Flex Consumption plan.')
@metadata({ azd: { type: 'location' } })
param location string

@minLength(1)
@description('Existing resource group holding the Image Builder templates and both Compute Galleries.')
param imageFactoryResourceGroupName string

@minLength(1)
@description('Compute Gallery in the image factory group that Image Builder distributes new versions to.')
param stagingGalleryName string

@minLength(1)
@description('Compute Gallery in the image factory group that approved versions are published to.')
param productionGalleryName string

@description('Comma-separated Image Builder template names in the image factory group, e.g. "win11-avd,ubuntu-2204".')
param buildTemplateNames string = ''

@minValue(1)
@maxValue(146000)
@description('Days each audit blob version stays immutable (WORM). 2557 days = 7 years.')
param auditRetentionDays int = 2557

@description('Set true after the audit retention policy has been locked (docs/operations.md): the template then leaves the locked policy alone.')
param auditPolicyLocked bool = false

@description('NCRONTAB (UTC) for refresh_images; empty means the app default.')
param refreshSchedule string = ''

@description('NCRONTAB (UTC) for reconcile_builds; empty means the app default.')
param reconcileSchedule string = ''

@description('NCRONTAB (UTC) for seal_audit_digest (one signed digest per run); empty means hourly, the app default.')
param auditDigestSchedule string = ''

@description('NCRONTAB (UTC) for the audit outbox timer; empty means every 5 minutes, the app default.')
param auditOutboxSchedule string = ''

@description('Create the Event Grid subscription to build_events. Leave false on the first `azd up`: the postdeploy hook creates it once the function exists and then sets this to true (see docs/operations.md).')
param buildEventsSubscriptionEnabled bool = false

@description('Optional Entra object id (ideally a group) that may read rejected and dead-lettered events.')
param operatorsPrincipalId string = ''

@description('Optional Entra object id (ideally a group) that may read the audit container and the signing key\'s public part (auditors who verify the trail).')
param auditReadersPrincipalId string = ''

@description('Name of the Event Grid system topic on the image factory group. Only one system topic may exist per source: if the group already has one, put its name here.')
param imageFactorySystemTopicName string = ''

@description('CanNotDelete locks on the governance storage account, the audit signing Key Vault and the image factory system topic (which protects the image factory group from whole-group deletion). Set false only for throw-away test environments.')
param deleteLocks bool = true

@description('Storage redundancy of the governance account (audit, tattoos). Prefer Standard_GZRS or Standard_RAGZRS in production where the region offers it.')
@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_RAGRS', 'Standard_GZRS', 'Standard_RAGZRS'])
param governanceStorageSku string = 'Standard_LRS'

// Names the app reads through its settings; the defaults match shared/settings.py.
param tattooTableName string = 'imagetattoos'
param rejectedEventsContainerName string = 'rejected-events'
param auditContainerName string = 'audit'
param deadLetterContainerName string = 'eventgrid-deadletter'
// Key that signs audit digests; its versionless URI becomes AUDIT_KEY_VAULT_KEY_ID.
param auditSigningKeyName string = 'audit-digest-signing'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-gig-${resourceToken}'
var hostStorageName = 'sthost${resourceToken}'
var governanceStorageName = 'stgov${resourceToken}'
var applicationInsightsName = 'appi-${resourceToken}'
// 16 characters (vault names: 3-24, globally unique; a deleted vault keeps its name while soft-deleted).
var keyVaultName = 'kv-${resourceToken}'
// Flex Consumption pulls the app package from this container in the host storage account.
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var systemTopicName = !empty(imageFactorySystemTopicName) ? imageFactorySystemTopicName : 'evgt-imagefactory-${resourceToken}'
// Custom topic for the app's outbound governance events (CloudEvents 1.0; docs/outbound-events.md).
var eventsTopicName = 'evgt-governance-${resourceToken}'
// The function the Event Grid subscription delivers to. Its name is stable (function_app.py).
var buildEventsFunctionName = 'build_events'

var templateNames = filter(map(split(buildTemplateNames, ','), n => trim(n)), n => !empty(n))
var buildTemplateIds = join(
  map(templateNames, n => resourceId(subscription().subscriptionId, imageFactoryResourceGroupName, 'Microsoft.VirtualMachineImages/imageTemplates', n)),
  ','
)
var stagingGalleryId = resourceId(subscription().subscriptionId, imageFactoryResourceGroupName, 'Microsoft.Compute/galleries', stagingGalleryName)
var productionGalleryId = resourceId(subscription().subscriptionId, imageFactoryResourceGroupName, 'Microsoft.Compute/galleries', productionGalleryName)

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

resource imageFactoryRg 'Microsoft.Resources/resourceGroups@2024-03-01' existing = {
  name: imageFactoryResourceGroupName
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-gig-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: applicationInsightsName
    location: location
    tags: tags
  }
}

module hostStorage 'app/host-storage.bicep' = {
  name: 'host-storage'
  scope: rg
  params: {
    name: hostStorageName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

module governanceStorage 'app/governance-storage.bicep' = {
  name: 'governance-storage'
  scope: rg
  params: {
    name: governanceStorageName
    location: location
    tags: tags
    skuName: governanceStorageSku
    tattooTableName: tattooTableName
    rejectedEventsContainerName: rejectedEventsContainerName
    deadLetterContainerName: deadLetterContainerName
    auditContainerName: auditContainerName
    auditRetentionDays: auditRetentionDays
    auditPolicyLocked: auditPolicyLocked
    deleteLock: deleteLocks
  }
}

module keyVault 'app/key-vault.bicep' = {
  name: 'key-vault'
  scope: rg
  params: {
    name: keyVaultName
    location: location
    tags: tags
    keyName: auditSigningKeyName
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
    deleteLock: deleteLocks
  }
}

module systemTopic 'app/eventgrid-topic.bicep' = {
  name: take('imagefactory-system-topic-${environmentName}', 64)
  scope: imageFactoryRg
  params: {
    name: systemTopicName
    tags: tags
    deleteLock: deleteLocks
  }
}

module eventsTopic 'app/events-topic.bicep' = {
  name: 'events-topic'
  scope: rg
  params: {
    name: eventsTopicName
    location: location
    tags: tags
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

// Every role assignment lives in app/rbac.bicep; it is deployed once per resource group it grants in.
module rbacApp 'app/rbac.bicep' = {
  name: 'rbac-app'
  scope: rg
  params: {
    target: 'app'
    environmentName: environmentName
    appPrincipalId: identity.outputs.principalId
    governanceStorageAccountName: governanceStorage.outputs.name
    hostStorageAccountName: hostStorage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    rejectedEventsContainerName: rejectedEventsContainerName
    deadLetterContainerName: deadLetterContainerName
    auditContainerName: auditContainerName
    keyVaultName: keyVault.outputs.name
    auditSigningKeyName: keyVault.outputs.keyName
    eventsTopicName: eventsTopic.outputs.name
    systemTopicPrincipalId: systemTopic.outputs.principalId
    operatorsPrincipalId: operatorsPrincipalId
    auditReadersPrincipalId: auditReadersPrincipalId
  }
}

module rbacImageFactory 'app/rbac.bicep' = {
  name: take('rbac-imagefactory-${environmentName}', 64)
  scope: imageFactoryRg
  params: {
    target: 'imageFactory'
    environmentName: environmentName
    appPrincipalId: identity.outputs.principalId
    // Unused by this target, but every name must be a valid string (plain names: no needless waits).
    governanceStorageAccountName: governanceStorageName
    hostStorageAccountName: hostStorageName
    applicationInsightsName: applicationInsightsName
    rejectedEventsContainerName: rejectedEventsContainerName
    deadLetterContainerName: deadLetterContainerName
    auditContainerName: auditContainerName
    keyVaultName: keyVaultName
    auditSigningKeyName: auditSigningKeyName
    eventsTopicName: eventsTopicName
    systemTopicPrincipalId: ''
    operatorsPrincipalId: ''
    auditReadersPrincipalId: ''
  }
}

module functionApp 'app/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostStorageAccountName: hostStorage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    // Names are read by shared/settings.py and by binding expressions in function_app.py: keep them exact.
    appSettings: {
      GOVERNANCE_MODE: 'azure'
      AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
      GOVSTORAGE__blobServiceUri: governanceStorage.outputs.blobEndpoint
      GOVSTORAGE__tableServiceUri: governanceStorage.outputs.tableEndpoint
      GOVSTORAGE__credential: 'managedidentity'
      // The app also uses this client id for its ARM clients (gallery, Image Builder).
      GOVSTORAGE__clientId: identity.outputs.clientId
      BUILD_TEMPLATE_IDS: buildTemplateIds
      STAGING_GALLERY_ID: stagingGalleryId
      REFRESH_SCHEDULE: !empty(refreshSchedule) ? refreshSchedule : '0 0 3 1 * *'
      RECONCILE_SCHEDULE: !empty(reconcileSchedule) ? reconcileSchedule : '0 */15 * * * *'
      TATTOO_TABLE: tattooTableName
      REJECTED_EVENTS_CONTAINER: rejectedEventsContainerName
      // Audit trail (docs/audit-format.md). App settings are strings: AUDIT_SHARDS is parsed by the app.
      AUDIT_CONTAINER: auditContainerName
      // Part of the archive layout (shard=SS in every segment path): decide before the first record.
      AUDIT_SHARDS: '16'
      AUDIT_DIGEST_SCHEDULE: !empty(auditDigestSchedule) ? auditDigestSchedule : '0 0 * * * *'
      AUDIT_OUTBOX_SCHEDULE: !empty(auditOutboxSchedule) ? auditOutboxSchedule : '0 */5 * * * *'
      // Versionless key URI: the app signs with the key's current version and names it in each digest.
      AUDIT_KEY_VAULT_KEY_ID: keyVault.outputs.keyUri
      // Deliberately absent: AUDIT_SIGNING_KEY_FILE (development only; the app rejects it in Azure) and
      // AUDIT_ALLOW_MUTABLE_CONTAINER (break-glass override of the WORM check; must stay unset in Azure,
      // and every provision removes it again because this resource replaces all app settings).
      // Validation gate: the policy ships with the code (policies/); the timer evaluates built versions.
      VALIDATE_SCHEDULE: '0 */5 * * * *'
      EXPIRE_SCHEDULE: '0 */30 * * * *'
      APPROVAL_SOD_STRICT: 'true'
      POLICY_ENVIRONMENT: 'production'
      // Outbound governance events: published with the identity (EventGrid Data Sender on this topic only).
      EVENTS_TOPIC_ENDPOINT: eventsTopic.outputs.endpoint
    }
  }
  // Grant storage access before the host starts, so its first start does not fail on 403s.
  dependsOn: [rbacApp]
}

// ORDERING: an AzureFunction endpoint is validated against the function resource
// (.../sites/<app>/functions/build_events), which exists only after the code is deployed and the
// host has indexed it. `azd up` provisions before it deploys, so on the first run this module is
// skipped and the postdeploy hook (infra/hooks/postdeploy.*) deploys the same file once the function
// is listed, then sets BUILD_EVENTS_SUBSCRIPTION_ENABLED=true so later provisions keep declaring it.
module buildEventsSubscription 'app/eventgrid-subscription.bicep' = if (buildEventsSubscriptionEnabled) {
  name: take('build-events-subscription-${environmentName}', 64)
  scope: imageFactoryRg
  params: {
    systemTopicName: systemTopic.outputs.name
    functionResourceId: '${functionApp.outputs.id}/functions/${buildEventsFunctionName}'
    deadLetterStorageAccountId: governanceStorage.outputs.id
    deadLetterContainerName: deadLetterContainerName
  }
  dependsOn: [rbacApp]
}

// Outputs become azd environment values (and the postdeploy hook's inputs).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_ID string = functionApp.outputs.id
output AZURE_FUNCTION_URL string = functionApp.outputs.uri
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output GOVERNANCE_STORAGE_ACCOUNT_NAME string = governanceStorage.outputs.name
output GOVERNANCE_STORAGE_ACCOUNT_ID string = governanceStorage.outputs.id
output HOST_STORAGE_ACCOUNT_NAME string = hostStorage.outputs.name
output REJECTED_EVENTS_CONTAINER string = rejectedEventsContainerName
output EVENTGRID_DEADLETTER_CONTAINER string = deadLetterContainerName
output AUDIT_CONTAINER string = auditContainerName
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output AUDIT_SIGNING_KEY_NAME string = keyVault.outputs.keyName
output AUDIT_KEY_VAULT_KEY_ID string = keyVault.outputs.keyUri
output EVENTS_TOPIC_NAME string = eventsTopic.outputs.name
output EVENTS_TOPIC_ENDPOINT string = eventsTopic.outputs.endpoint
output IMAGE_FACTORY_RESOURCE_GROUP string = imageFactoryResourceGroupName
output IMAGE_FACTORY_SYSTEM_TOPIC_NAME string = systemTopic.outputs.name
output BUILD_EVENTS_FUNCTION_ID string = '${functionApp.outputs.id}/functions/${buildEventsFunctionName}'
output STAGING_GALLERY_ID string = stagingGalleryId
output PRODUCTION_GALLERY_ID string = productionGalleryId
output BUILD_TEMPLATE_IDS string = buildTemplateIds
