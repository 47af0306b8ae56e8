// The client developer's view, checked: the official Firebase JS SDK (pinned in
// package-lock.json) against the running local stack (`cargo run -p devstack`, found through
// its address file). Sign-up through the Auth emulator runs the sign-up hook; every callable
// is called through the typed client (`httpsCallableFromURL`) on its happy path and its
// documented errors; a payment is started from the SDK with the idempotency key in `data`,
// replayed, and paid end to end (the test plays Stripe: it signs the webhook as Stripe would);
// Firestore reads go through the SDK under `firestore.rules`, one allowed and one denied.
// Nothing here touches `fetch` for the client's calls; `fetch` is used only where the test
// plays a party other than the client (seeding a product as the vendor tooling does, Stripe).

import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { deleteApp, initializeApp } from "firebase/app";
import type { FirebaseApp } from "firebase/app";
import { connectAuthEmulator, createUserWithEmailAndPassword, getAuth } from "firebase/auth";
import {
  addDoc,
  collection,
  connectFirestoreEmulator,
  doc,
  getDoc,
  getFirestore,
  onSnapshot,
  serverTimestamp,
  terminate,
  Timestamp,
} from "firebase/firestore";
import type { Firestore } from "firebase/firestore";
import { getFunctions } from "firebase/functions";

import { HearthClient, HearthError, newIdempotencyKey } from "../src/index.js";
import type {
  ErrorCode,
  FeedEntryDocument,
  InitiatePaymentRequest,
  InitiatePaymentResult,
  OrderDocument,
  OrderStatus,
  ReserveInventoryResult,
} from "../src/index.js";

/** What `cargo run -p devstack` writes once everything is up. */
interface RunningStack {
  project: string;
  emulators: { firestore: string; pubsub: string; auth: string };
  functions: Record<string, string>;
  provider: string | null;
}

const stackFile =
  process.env.HEARTH_DEVSTACK_STATE ?? join(tmpdir(), "hearth-devstack", "running.json");
const stack = JSON.parse(readFileSync(stackFile, "utf8")) as RunningStack;
const apiUrl = required(stack.functions["api"], "the api");
const webhookUrl = required(stack.functions["payment-webhook"], "payment-webhook");
const providerUrl = required(stack.provider, "the fake payment provider");
/** The signing secret devstack gave payment-webhook (the runner sets it for both). */
const webhookSecret = required(
  process.env.HEARTH_STRIPE_WEBHOOK_SECRETS?.split(",")[0],
  "HEARTH_STRIPE_WEBHOOK_SECRETS",
);
const run = randomUUID().slice(0, 8);

function required<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`${what} is not in ${stackFile}`);
  return value;
}

/** One person using a client app: their own Firebase app, auth state and typed client. */
interface Person {
  app: FirebaseApp;
  uid: string;
  db: Firestore;
  api: HearthClient;
}

const apps: FirebaseApp[] = [];

function firebaseApp(name: string): { app: FirebaseApp; db: Firestore; api: HearthClient } {
  const app = initializeApp({ projectId: stack.project, apiKey: "demo-api-key" }, `${name}-${run}`);
  apps.push(app);
  connectAuthEmulator(getAuth(app), `http://${stack.emulators.auth}`, { disableWarnings: true });
  const db = getFirestore(app);
  const [host, port] = stack.emulators.firestore.split(":");
  connectFirestoreEmulator(db, required(host, "firestore host"), Number(port));
  return { app, db, api: new HearthClient(getFunctions(app), apiUrl, { timeoutMs: 30_000 }) };
}

/** Signs up through the Auth emulator, which runs the sign-up hook. */
async function signUp(name: string): Promise<Person> {
  const { app, db, api } = firebaseApp(name);
  const credential = await createUserWithEmailAndPassword(
    getAuth(app),
    `${name}-${run}@example.com`,
    "correct horse battery staple",
  );
  return { app, db, api, uid: credential.user.uid };
}

/** Runs `call`, which must fail with `code`; returns the error. */
async function refused(call: Promise<unknown>, code: ErrorCode): Promise<HearthError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof HearthError, `not a HearthError: ${String(error)}`);
    assert.equal(error.code, code, `${error.callable}: ${error.message}`);
    return error;
  }
  assert.fail(`expected ${code}, the call succeeded`);
}

/** Writes a document as the vendor tooling does (server side: the emulator's owner token). */
async function seed(path: string, fields: Record<string, unknown>): Promise<void> {
  const url = `http://${stack.emulators.firestore}/v1/projects/${stack.project}/databases/(default)/documents/${path}`;
  const response = await fetch(url, {
    method: "PATCH",
    headers: { authorization: "Bearer owner", "content-type": "application/json" },
    body: JSON.stringify({ fields }),
  });
  assert.equal(response.status, 200, `seeding ${path}: ${await response.text()}`);
}

/** A product priced 12.50 USD with `units` in stock (one stock shard, as `store` lays it out). */
async function product(id: string, units: number): Promise<void> {
  await seed(`products/${id}`, {
    price_minor: { integerValue: "1250" },
    currency: { stringValue: "usd" },
  });
  await seed(`products/${id}/stock/all`, {
    product_id: { stringValue: id },
    variant_id: { nullValue: null },
    shards: { integerValue: "1" },
    total: { integerValue: String(units) },
  });
  await seed(`products/${id}/stock/all/shards/0`, {
    shard: { integerValue: "0" },
    available: { integerValue: String(units) },
  });
}

/** Stripe's part: the PaymentIntent succeeded; a webhook signed with the endpoint secret. */
async function stripeConfirms(intentId: string): Promise<void> {
  const intentResponse = await fetch(`${providerUrl}/v1/payment_intents/${intentId}`, {
    headers: { authorization: "Bearer sk_test_sdk" },
  });
  assert.equal(intentResponse.status, 200);
  const intent = (await intentResponse.json()) as Record<string, unknown>;
  const created = Math.floor(Date.now() / 1000);
  const event = {
    id: `evt_sdk_${run}`,
    object: "event",
    api_version: "2024-06-20",
    created,
    livemode: false,
    pending_webhooks: 1,
    type: "payment_intent.succeeded",
    data: { object: { ...intent, status: "succeeded" } },
  };
  const body = JSON.stringify(event);
  const signature = createHmac("sha256", webhookSecret).update(`${created}.${body}`).digest("hex");
  const response = await fetch(`${webhookUrl}/stripe`, {
    method: "POST",
    headers: { "content-type": "application/json", "stripe-signature": `t=${created},v1=${signature}` },
    body,
  });
  assert.equal(response.status, 200, await response.text());
}

/** Waits (onSnapshot) until `orders/{id}` has `status`, reading it as the typed document. */
function orderReaches(db: Firestore, orderId: string, status: OrderStatus): Promise<OrderDocument> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`orders/${orderId} did not become ${status} within 60 s`));
    }, 60_000);
    const stop = onSnapshot(
      doc(db, "orders", orderId),
      (snapshot) => {
        const order = snapshot.data() as OrderDocument | undefined;
        if (order?.status === status) {
          clearTimeout(timer);
          stop();
          resolve(order);
        }
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

describe("Hearth from the Firebase JS SDK", { concurrency: false }, () => {
  let buyer: Person;
  let vendor: Person;
  let stranger: Person;
  const kettle = `kettle-${run}`;

  before(async () => {
    [buyer, vendor, stranger] = await Promise.all([
      signUp("buyer"),
      signUp("vendor"),
      signUp("stranger"),
    ]);
    await product(kettle, 5);
  });

  after(async () => {
    for (const app of apps) {
      await terminate(getFirestore(app));
      await deleteApp(app);
    }
  });

  test("sign-up runs the hook: the ID token carries the tenant and role claims", async () => {
    const token = await getAuth(buyer.app).currentUser!.getIdTokenResult(true);
    assert.equal(typeof token.claims["tenant_id"], "string");
    assert.ok((token.claims["tenant_id"] as string).length > 0);
    assert.equal(token.claims["role"], "owner");
  });

  test("a call without a signed-in user is unauthenticated", async () => {
    const anonymous = firebaseApp("anonymous");
    await refused(anonymous.api.call("getOrder", { orderId: "ord_x" }), "unauthenticated");
  });

  test("reserveInventory and releaseReservation: happy paths and documented errors", async () => {
    const held: ReserveInventoryResult = await buyer.api.call("reserveInventory", {
      productId: kettle,
      quantity: 1,
    });
    assert.match(held.reservationId, /^res_/);
    assert.equal(held.quantity, 1);
    assert.ok(Date.parse(held.expiresAt) > Date.now());

    const released = await buyer.api.call("releaseReservation", {
      reservationId: held.reservationId,
    });
    assert.deepEqual(released, { released: true, status: "released" });
    const again = await buyer.api.call("releaseReservation", { reservationId: held.reservationId });
    assert.equal(again.released, false, "the units return exactly once");

    await refused(buyer.api.call("reserveInventory", { productId: kettle, quantity: 0 }), "invalid-argument");
    const unknownField = { productId: kettle, quantity: 1, uid: "someone" } as unknown as {
      productId: string;
      quantity: number;
    };
    await refused(buyer.api.call("reserveInventory", unknownField), "invalid-argument");
    await refused(
      buyer.api.call("reserveInventory", { productId: `nothing-${run}`, quantity: 1 }),
      "not-found",
    );
    const soldOut = await refused(
      buyer.api.call("reserveInventory", { productId: kettle, quantity: 9 }),
      "failed-precondition",
    );
    assert.deepEqual(soldOut.soldOut(), { available: 5 }, "details say what is left");
    await refused(
      stranger.api.call("releaseReservation", { reservationId: held.reservationId }),
      "permission-denied",
    );
  });

  test("a payment from the SDK: key in data, a replay seen as such, paid end to end", async () => {
    const held = await buyer.api.call("reserveInventory", { productId: kettle, quantity: 2 });
    const request: InitiatePaymentRequest = {
      reservationIds: [held.reservationId],
      provider: "stripe",
      idempotencyKey: newIdempotencyKey(),
    };
    const first: InitiatePaymentResult = await buyer.api.call("initiatePayment", request);
    assert.equal(first.replayed, false);
    assert.equal(first.status, "pending");
    assert.equal(first.amountMinor, 2500);
    assert.equal(first.currency, "usd");
    assert.match(first.clientSecret ?? "", /^pi_.*_secret_/);

    // The answer was lost, the app retries with the same key: the saved answer, marked.
    const replay = await buyer.api.call("initiatePayment", request);
    assert.equal(replay.replayed, true);
    assert.deepEqual({ ...replay, replayed: false }, first);

    // The key belongs to that payment: another payload with it is refused; no key at all too.
    await refused(
      buyer.api.call("initiatePayment", { ...request, provider: "pesapal" }),
      "invalid-argument",
    );
    const { idempotencyKey: _, ...withoutKey } = request;
    await refused(buyer.api.call("initiatePayment", withoutKey), "invalid-argument");

    // The order is the buyer's to read (rules) and to listen to until Stripe confirms.
    const order = (await getDoc(doc(buyer.db, "orders", first.orderId))).data() as OrderDocument;
    assert.equal(order.status, "awaiting_payment");
    assert.equal(order.uid, buyer.uid);
    assert.equal(order.amount_minor, 2500);
    const paid = orderReaches(buyer.db, first.orderId, "paid");
    await stripeConfirms(first.providerPaymentId);
    const settled = await paid;
    assert.equal(settled.items[0]?.reservation_id, held.reservationId);
    assert.equal(typeof settled.updated_at.toMillis(), "number", "a Firestore Timestamp");

    const viaApi = await buyer.api.call("getOrder", { orderId: first.orderId });
    assert.equal(viaApi.status, "paid");
    assert.deepEqual(viaApi.payments.map((p) => p.provider), ["stripe"]);

    // Someone else's order: not found through the api, denied by the rules.
    await refused(stranger.api.call("getOrder", { orderId: first.orderId }), "not-found");
    await assert.rejects(getDoc(doc(stranger.db, "orders", first.orderId)), (error: unknown) => {
      assert.equal((error as { code?: string }).code, "permission-denied");
      return true;
    });
  });

  test("the feed: follow, read, like, view, stories, unfollow; feed entries under the rules", async () => {
    const post = await addDoc(collection(vendor.db, "posts"), {
      vendorId: vendor.uid,
      isActive: true,
      createdAt: serverTimestamp(),
      caption: `fresh rye ${run}`,
    });

    const followed = await buyer.api.call("followVendor", { vendorId: vendor.uid });
    assert.equal(followed.following, true);
    assert.equal(followed.backfilled, 1);
    await refused(buyer.api.call("followVendor", { vendorId: buyer.uid }), "invalid-argument");

    const feed = await buyer.api.call("getFeed", { limit: 10 });
    const mine = feed.posts.find((p) => p.id === post.id);
    assert.ok(mine, `post ${post.id} in ${JSON.stringify(feed.posts.map((p) => p.id))}`);
    assert.equal(mine.vendorId, vendor.uid);
    assert.equal(mine.caption, `fresh rye ${run}`);
    assert.equal(mine.source, "following");
    await refused(buyer.api.call("getFeed", { cursor: "not-a-cursor" }), "invalid-argument");

    // The feed entry itself: the buyer's to read; another user's feed is denied.
    const entry = (await getDoc(doc(buyer.db, "feeds", buyer.uid, "posts", post.id))).data() as
      | FeedEntryDocument
      | undefined;
    assert.equal(entry?.vendorId, vendor.uid);
    assert.equal(entry?.source, "following");
    await assert.rejects(
      getDoc(doc(stranger.db, "feeds", buyer.uid, "posts", post.id)),
      (error: unknown) => (error as { code?: string }).code === "permission-denied",
    );

    const liked = await buyer.api.call("likePost", { postId: post.id });
    assert.deepEqual([liked.liked, liked.changed], [true, true]);
    const likedAgain = await buyer.api.call("likePost", { postId: post.id });
    assert.equal(likedAgain.changed, false, "a repeated like changes nothing");
    const unliked = await buyer.api.call("unlikePost", { postId: post.id });
    assert.deepEqual([unliked.liked, unliked.changed], [false, true]);
    assert.equal((await buyer.api.call("recordView", { postId: post.id })).counted, true);
    assert.equal((await buyer.api.call("recordView", { postId: post.id })).counted, false);
    await refused(buyer.api.call("likePost", { postId: `missing-${run}` }), "not-found");

    const story = await addDoc(collection(vendor.db, "stories"), {
      vendorId: vendor.uid,
      createdAt: serverTimestamp(),
      expiresAt: Timestamp.fromMillis(Date.now() + 3_600_000),
      mediaUrl: `https://media.example/${run}.jpg`,
    });
    const stories = await buyer.api.call("getStories", null);
    const group = stories.storyGroups.find((g) => g.vendorId === vendor.uid);
    assert.deepEqual(group?.stories.map((s) => s.id), [story.id]);
    assert.equal(group?.stories[0]?.mediaUrl, `https://media.example/${run}.jpg`);

    const unfollowed = await buyer.api.call("unfollowVendor", { vendorId: vendor.uid });
    assert.equal(unfollowed.following, false);
    assert.equal(unfollowed.removed, 1);
  });

  test("over the limit: resource-exhausted with the wait in details", async () => {
    // initiatePayment allows 5 fresh keys per 15 minutes per user; each of these fails after
    // its slot is counted (no such reservation), the sixth is refused by the limit.
    const attempt = () =>
      stranger.api.call("initiatePayment", {
        reservationIds: [`res_missing_${run}`],
        provider: "stripe",
        idempotencyKey: newIdempotencyKey(),
      });
    for (let i = 0; i < 5; i += 1) await refused(attempt(), "not-found");
    const limited = await refused(attempt(), "resource-exhausted");
    const wait = limited.retryAfterSeconds();
    assert.ok(wait !== null && wait >= 1 && wait <= 900, `retryAfterSeconds: ${wait}`);
  });
});
