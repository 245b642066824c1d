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
// A third group, `rg-<environment>-boottest` (created here), holds only an isolated network and the
// validation gate's throw-away boot test VMs; the app may manage VMs there and nowhere else.
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

@description('NCRONTAB (UTC) for validate_images (the validation gate, boot tests included); empty means every 5 minutes, the app default.')
param validateSchedule string = ''

@description('NCRONTAB (UTC) for expire_changes (approval reminders and expiry); empty means every 30 minutes, the app default.')
param expireSchedule string = ''

@description('Policy environment for versions in a gallery the policy file\'s environments do not name.')
param policyEnvironment string = 'production'

@description('Strict separation of duties: the publisher who releases a change may not be one of its approvers.')
param approvalSodStrict bool = true

@description('AUTH_AUDIENCE: the API app registration\'s App ID URI and/or client id, comma-separated (docs/operations.md, "Entra app registration"). Empty leaves every role-checked HTTP route refusing with a configuration error.')
param authAudience string = ''

@description('Optional AUTH_GROUP_ROLES: Entra group object ids mapped to app roles, "<group id>=Approver;<group id>=Builder,Publisher" or JSON.')
param authGroupRoles string = ''

@description('Name of an existing Key Vault secret (in this environment\'s vault) holding the ServiceNow callback HMAC secret. Empty: ServiceNow callbacks are not accepted. Create the secret first (docs/operations.md, "Change-system callbacks").')
param callbackServiceNowSecretName string = ''

@description('Address space of the boot test\'s isolated network (one subnet). Nothing peers with it.')
param bootTestAddressPrefix string = '10.200.0.0/24'

@description('Region of the boot test network; empty means `location`. A boot test VM is created in its image definition\'s region and its NIC must be in a subnet of that region: set this to the staging gallery\'s region when it differs.')
param bootTestLocation string = ''

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
param callbackNonceTableName string = 'callbacknonces'
param rejectedEventsContainerName string = 'rejected-events'
param validationReportsContainerName string = 'validation-reports'
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
// The boot test's throw-away group: an isolated network and, briefly, the VMs the validation gate boots.
var bootTestResourceGroupName = 'rg-${environmentName}-boottest'

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

resource bootTestRg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: bootTestResourceGroupName
  location: !empty(bootTestLocation) ? bootTestLocation : location
  tags: tags
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
    callbackNonceTableName: callbackNonceTableName
    rejectedEventsContainerName: rejectedEventsContainerName
    validationReportsContainerName: validationReportsContainerName
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

module bootTest 'app/boot-test.bicep' = {
  name: 'boot-test-network'
  scope: bootTestRg
  params: {
    vnetName: 'vnet-boottest-${resourceToken}'
    location: !empty(bootTestLocation) ? bootTestLocation : location
    tags: tags
    addressPrefix: bootTestAddressPrefix
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
    callbackSecretName: callbackServiceNowSecretName
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

module rbacBootTest 'app/rbac.bicep' = {
  name: take('rbac-boottest-${environmentName}', 64)
  scope: bootTestRg
  params: {
    target: 'bootTest'
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
    appSettings: union({
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
      VALIDATION_REPORTS_CONTAINER: validationReportsContainerName
      CALLBACK_NONCE_TABLE: callbackNonceTableName
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
      // Validation gate: the policy ships with the code (policies/, POLICY_FILE left at its default); the
      // timer evaluates built versions. The approval workflow's timer reminds and expires.
      VALIDATE_SCHEDULE: !empty(validateSchedule) ? validateSchedule : '0 */5 * * * *'
      EXPIRE_SCHEDULE: !empty(expireSchedule) ? expireSchedule : '0 */30 * * * *'
      APPROVAL_SOD_STRICT: approvalSodStrict ? 'true' : 'false'
      POLICY_ENVIRONMENT: policyEnvironment
      // Boot tests: throw-away VMs in their own group, NICs in its isolated subnet.
      BOOT_TEST_RESOURCE_GROUP_ID: bootTestRg.id
      BOOT_TEST_SUBNET_ID: bootTest.outputs.subnetId
      // HTTP API authentication: Entra ID bearer tokens of this tenant, for the API's app registration.
      // An empty AUTH_AUDIENCE or AUTH_GROUP_ROLES counts as unset.
      AUTH_MODE: 'jwt'
      AUTH_TENANT_ID: tenant().tenantId
      AUTH_AUDIENCE: authAudience
      AUTH_GROUP_ROLES: authGroupRoles
      // Outbound governance events: published with the identity (EventGrid Data Sender on this topic only).
      EVENTS_TOPIC_ENDPOINT: eventsTopic.outputs.endpoint
    }, empty(callbackServiceNowSecretName) ? {} : {
      // ServiceNow's signed callbacks: the HMAC secret as a versionless Key Vault reference (the platform
      // resolves the current version with the identity; Key Vault Secrets User on this secret only).
      CALLBACK_SECRETS__SERVICENOW: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/${callbackServiceNowSecretName})'
    })
  }
  // Grant storage (and Key Vault secret) access before the host starts, so its first start does not fail on 403s.
  dependsOn: [rbacApp, rbacBootTest]
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
output VALIDATION_REPORTS_CONTAINER string = validationReportsContainerName
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
output BOOT_TEST_RESOURCE_GROUP string = bootTestRg.name
output BOOT_TEST_RESOURCE_GROUP_ID string = bootTestRg.id
output BOOT_TEST_SUBNET_ID string = bootTest.outputs.subnetId
