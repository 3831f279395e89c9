#!/usr/bin/env bash
# The seed article's blue-green-deploy.sh, as published, changed ONLY where the article's
# formatting broke it: comment lines had lost their '#', and several commands were glued to the
# next line ('..."Determine target version', '...$NAMESPACEScale up target deployment',
# 'fiecho', 'fiSwitch traffic'); each such line is split back into its two lines. Its names
# already match the bundled manifests (payment-service-blue/-green, the Service payment-service
# selecting version: blue|green, the container payment-service). The seed's own flaws are kept
# on purpose: zerodrop judges this script as it is (see README.md beside it).
set -euo pipefail
NAMESPACE=${NAMESPACE:-default}
SERVICE_NAME=${1:-payment-service}
NEW_IMAGE=${2}
TIMEOUT=${TIMEOUT:-300}
if [ -z "$NEW_IMAGE" ]; then
echo "Usage: $0 "
exit 1
fi
echo "Starting blue-green deployment for $SERVICE_NAME with image $NEW_IMAGE"
# Get current active version
CURRENT_VERSION=$(kubectl get service $SERVICE_NAME -n $NAMESPACE -o jsonpath='{.spec.selector.version}')
echo "Current active version: $CURRENT_VERSION"
# Determine target version
if [ "$CURRENT_VERSION" = "blue" ]; then
TARGET_VERSION="green"
INACTIVE_VERSION="blue"
else
TARGET_VERSION="blue"
INACTIVE_VERSION="green"
fi
echo "Deploying to $TARGET_VERSION environment"
# Update target deployment with new image
kubectl set image deployment/$SERVICE_NAME-$TARGET_VERSION $SERVICE_NAME=$NEW_IMAGE -n $NAMESPACE
# Scale up target deployment
echo "Scaling up $TARGET_VERSION deployment..."
kubectl scale deployment/$SERVICE_NAME-$TARGET_VERSION --replicas=3 -n $NAMESPACE
# Wait for target deployment to be ready
echo "Waiting for $TARGET_VERSION deployment to be ready..."
kubectl rollout status deployment/$SERVICE_NAME-$TARGET_VERSION -n $NAMESPACE --timeout=${TIMEOUT}s
# Verify all pods are ready
READY_PODS=$(kubectl get deployment $SERVICE_NAME-$TARGET_VERSION -n $NAMESPACE -o jsonpath='{.status.readyReplicas}')
DESIRED_PODS=$(kubectl get deployment $SERVICE_NAME-$TARGET_VERSION -n $NAMESPACE -o jsonpath='{.spec.replicas}')
if [ "$READY_PODS" != "$DESIRED_PODS" ]; then
echo "ERROR: Not all pods are ready. Ready: $READY_PODS, Desired: $DESIRED_PODS"
exit 1
fi
# Run smoke tests against target environment
echo "Running smoke tests against $TARGET_VERSION environment..."
if ! ./smoke-tests.sh $TARGET_VERSION; then
echo "ERROR: Smoke tests failed. Rolling back..."
kubectl scale deployment/$SERVICE_NAME-$TARGET_VERSION --replicas=0 -n $NAMESPACE
exit 1
fi
# Switch traffic to target version
echo "Switching traffic to $TARGET_VERSION..."
kubectl patch service $SERVICE_NAME -n $NAMESPACE -p '{"spec":{"selector":{"version":"'$TARGET_VERSION'"}}}'
# Verify traffic switch
sleep 5
NEW_ACTIVE=$(kubectl get service $SERVICE_NAME -n $NAMESPACE -o jsonpath='{.spec.selector.version}')
if [ "$NEW_ACTIVE" != "$TARGET_VERSION" ]; then
echo "ERROR: Traffic switch failed"
exit 1
fi
echo "Traffic successfully switched to $TARGET_VERSION"
# Run post-deployment verification
echo "Running post-deployment verification..."
if ! ./post-deployment-tests.sh; then
echo "ERROR: Post-deployment tests failed. Consider manual rollback."
exit 1
fi
# Scale down old version after successful verification
echo "Scaling down old $INACTIVE_VERSION deployment..."
kubectl scale deployment/$SERVICE_NAME-$INACTIVE_VERSION --replicas=0 -n $NAMESPACE
echo "Blue-green deployment completed successfully!"
echo "Active version: $TARGET_VERSION"
echo "Inactive version: $INACTIVE_VERSION (scaled to 0)"
