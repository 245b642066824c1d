// Event subscription: image factory Resource Manager events -> the `build_events` function.
//
// ORDERING: the AzureFunction endpoint names the function resource
// (.../sites/<app>/functions/build_events). Event Grid checks that it exists when the subscription is
// created, and it only exists after the code is deployed and the host has indexed the function. So
// this file is not part of the first provision: infra/hooks/postdeploy.* deploys it after `azd deploy`
// (waiting until the function is listed), then sets BUILD_EVENTS_SUBSCRIPTION_ENABLED=true so that
// main.bicep declares it from then on. Both paths use the same deployment name, parameters and defaults.
//
// Deployed into the image factory resource group (where the system topic lives).
param systemTopicName string

@description('Resource id of the function: <function app id>/functions/build_events.')
param functionResourceId string

@description('Governance storage account that receives undeliverable events.')
param deadLetterStorageAccountId string
param deadLetterContainerName string

@minValue(1)
@maxValue(30)
@description('Delivery attempts before an event is dead-lettered. The handler is idempotent and the reconcile timer catches anything missed, so a short retry budget is enough.')
param maxDeliveryAttempts int = 10

@minValue(1)
@maxValue(1440)
@description('Minutes Event Grid keeps retrying an event before dead-lettering it.')
param eventTimeToLiveInMinutes int = 1440

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource buildEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'build-events'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: functionResourceId
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceActionSuccess'
        'Microsoft.Resources.ResourceActionFailure'
        'Microsoft.Resources.ResourceActionCancel'
        'Microsoft.Resources.ResourceWriteSuccess'
      ]
      // Only Image Builder runs and new gallery image versions; everything else in the group
      // (deployments, tags, unrelated resources) never reaches the app.
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: [
            'Microsoft.VirtualMachineImages/imageTemplates/run/action'
            'Microsoft.Compute/galleries/images/versions/write'
          ]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    // Dead-letter with the topic's managed identity: the governance account has no shared keys.
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output id string = buildEvents.id
