/*
 * endpoints.h: which Endpoints objects a Deployment should have, as a pure
 * function of the Deployment and its ready Instances (the leader's endpoints
 * loop in sctld writes what this says; the load balancer programmer reads it).
 *
 * One Endpoints object per port of the Deployment that has `expose`, named
 * DEPLOYMENT-PORTNAME (or DEPLOYMENT-CONTAINERPORT for an unnamed port), with
 * one endpoint per ready Instance that has an address, sorted by instance name
 * so that the same state always gives the same bytes (and no write):
 *
 *   {kind: Endpoints, metadata: {name, labels: {deployment}},
 *    spec: {deployment, port: {name?, container, protocol}, expose: {...},
 *           endpoints: [{instance, node, address, port, revision, weight,
 *                        draining}]}}
 *
 * Every field the schema gives a default is written out (draining: false): a
 * status write re-normalizes the stored object through the schema, and a spec
 * that lacked a default would differ from what this returns, making the loop
 * write it again, forever (found by bench/rollout_bench.sh).
 *
 * Rules:
 *   1. only a ready Instance is an endpoint: nothing is registered before its
 *      readiness passes (issue 6), and one that stops being ready leaves;
 *   2. weight is 100 unless the Deployment's status.rollout.weights names the
 *      instance's revision (canary steps and blue-green switches set it there);
 *   3. a Deployment with no exposed port has no Endpoints.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>

/* ready: {instance name: {node, address, revision}} of the Deployment's ready
 * Instances (borrowed; may be NULL).  Returns a new JSON object {name: Endpoints}. */
json_t *sched_endpoints(const json_t *deployment, const json_t *ready);
/* Does the Deployment expose a port (so it has Endpoints, and its instances are
 * drained from their load balancer before they stop)? */
bool sched_exposes(const json_t *deployment);
/* The Instance fields an endpoint needs, or NULL if it is not an endpoint
 * (not ready, or no address).  New reference. */
json_t *sched_endpoint_of(const json_t *instance);
