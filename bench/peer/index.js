// The Node peer of scripts/bench-peer: payment-webhook's Stripe job written the way Stripe's
// documentation recommends, on the functions framework. Verify the signature on the raw body
// (stripe.webhooks.constructEvent), dedupe by creating webhook_events/{event id} (ALREADY_EXISTS
// means a duplicate), publish the same PaymentEvent JSON to payment-events with the order id as
// ordering key, answer 200 at once. A failed publish deletes the record so Stripe's retry
// publishes.
'use strict';

const functions = require('@google-cloud/functions-framework');
const Stripe = require('stripe');
const {Firestore, FieldValue} = require('@google-cloud/firestore');
const {PubSub} = require('@google-cloud/pubsub');

const projectId = process.env.GOOGLE_CLOUD_PROJECT;
const secret = process.env.STRIPE_WEBHOOK_SECRET;
const stripe = new Stripe(process.env.STRIPE_SECRET_KEY || 'sk_test_unused');
const db = new Firestore({projectId});
const topic = new PubSub({projectId}).topic('payment-events', {messageOrdering: true});

const KINDS = {
  'payment_intent.succeeded': 'succeeded',
  'payment_intent.payment_failed': 'failed',
  'payment_intent.canceled': 'canceled',
  'payment_intent.processing': 'processing',
  'charge.refunded': 'refunded',
};
const ALREADY_EXISTS = 6;

functions.http('stripe', async (req, res) => {
  let event;
  try {
    event = stripe.webhooks.constructEvent(req.rawBody, req.get('stripe-signature'), secret);
  } catch (err) {
    return res.status(400).json({error: 'Webhook signature verification failed.'});
  }
  const kind = KINDS[event.type];
  const object = event.data && event.data.object;
  const orderId = object && object.metadata && object.metadata.order_id;
  if (!kind || !orderId) {
    return res.json({received: true, ignored: true});
  }
  const ref = db.collection('webhook_events').doc(event.id);
  try {
    await ref.create({type: event.type, orderId, receivedAt: FieldValue.serverTimestamp()});
  } catch (err) {
    if (err.code === ALREADY_EXISTS) return res.json({received: true, duplicate: true});
    return res.status(503).json({error: 'Firestore unavailable'});
  }
  const payment = {
    v: 1,
    provider: 'stripe',
    provider_event_id: event.id,
    kind,
    provider_type: event.type,
    order_id: orderId,
    payment_id: kind === 'refunded' ? object.payment_intent : object.id,
    amount_minor: object.amount ?? null,
    currency: object.currency ?? null,
    raw_status: object.status ?? null,
    occurred_at: new Date(event.created * 1000).toISOString(),
  };
  try {
    await topic.publishMessage({
      data: Buffer.from(JSON.stringify(payment)),
      orderingKey: orderId,
      attributes: {provider: 'stripe', provider_event_id: event.id},
    });
  } catch (err) {
    topic.resumePublishing(orderId);
    await ref.delete().catch(() => {});
    return res.status(503).json({error: 'Pub/Sub unavailable'});
  }
  return res.json({received: true});
});
