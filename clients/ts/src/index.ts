// The typed Hearth client: every callable of the api with its generated request and result
// types, over the official Firebase JS SDK (`httpsCallableFromURL`), and errors with typed
// codes and details. The types in ../generated are produced from the Rust types by the api
// crate (functions/api/src/clients.rs); a test there fails when they are stale.

import { FunctionsError, httpsCallableFromURL } from "firebase/functions";
import type { Functions } from "firebase/functions";

import type { Callables } from "../generated/callables.js";
import type { Code } from "../generated/Code.js";
import type { HoldCapDetails } from "../generated/HoldCapDetails.js";
import type { SoldOutDetails } from "../generated/SoldOutDetails.js";

export * from "../generated/index.js";

/** The name of a callable. */
export type CallableName = keyof Callables;
/** The `data` a callable takes. */
export type RequestOf<K extends CallableName> = Callables[K]["request"];
/** The `result` a callable answers. */
export type ResultOf<K extends CallableName> = Callables[K]["result"];

type Kebab<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Lowercase<Head>}-${Kebab<Tail>}`
  : Lowercase<S>;

/**
 * The error codes callables answer, as the Firebase SDKs spell them (`RESOURCE_EXHAUSTED` on
 * the wire is `resource-exhausted` here), derived from the generated canonical `Code`.
 */
export type ErrorCode = Kebab<Code>;

/**
 * `details` of a `resource-exhausted` (rate limited) or `aborted` (same idempotency key still
 * running) error: whole seconds to wait before retrying (the `Retry-After` header, which SDK
 * callers cannot read).
 */
export interface RetryAfterDetails {
  retryAfterSeconds: number;
}

/** A failed call: the callable, its typed code, the server's message and `details`. */
export class HearthError extends Error {
  readonly callable: CallableName;
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(callable: CallableName, code: ErrorCode, message: string, details: unknown) {
    super(message);
    this.name = "HearthError";
    this.callable = callable;
    this.code = code;
    this.details = details;
  }

  /** Seconds to wait before retrying, when the server said (`resource-exhausted`, `aborted`). */
  retryAfterSeconds(): number | null {
    const details = this.details as Partial<RetryAfterDetails> | null | undefined;
    return typeof details?.retryAfterSeconds === "number" ? details.retryAfterSeconds : null;
  }

  /** `reserveInventory` sold out: units left. */
  soldOut(): SoldOutDetails | null {
    const details = this.details as Partial<SoldOutDetails> | null | undefined;
    return this.code === "failed-precondition" && typeof details?.available === "number"
      ? { available: details.available }
      : null;
  }

  /** `reserveInventory` over the held-units cap: what is held and the cap. */
  holdCap(): HoldCapDetails | null {
    const details = this.details as Partial<HoldCapDetails> | null | undefined;
    return this.code === "failed-precondition" &&
      typeof details?.heldUnits === "number" &&
      typeof details.maxHeldUnits === "number"
      ? { heldUnits: details.heldUnits, maxHeldUnits: details.maxHeldUnits }
      : null;
  }
}

/** What the caller may change per client. */
export interface HearthClientOptions {
  /** Per-call timeout in milliseconds (the SDK's default is 70 s). */
  timeoutMs?: number;
}

/**
 * The api's callables for one Firebase app. `baseUrl` is the api's URL for the environment
 * (`http://127.0.0.1:8607` locally with devstack's default ports, the Cloud Run URL otherwise); the signed-in user's ID
 * token is sent by the SDK.
 */
export class HearthClient {
  private readonly functions: Functions;
  private readonly baseUrl: string;
  private readonly options: HearthClientOptions;

  constructor(functions: Functions, baseUrl: string, options: HearthClientOptions = {}) {
    this.functions = functions;
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.options = options;
  }

  /** Calls `name` with `data`; failures are thrown as {@link HearthError}. */
  async call<K extends CallableName>(name: K, data: RequestOf<K>): Promise<ResultOf<K>> {
    const callable = httpsCallableFromURL<RequestOf<K>, ResultOf<K>>(
      this.functions,
      `${this.baseUrl}/${name}`,
      this.options.timeoutMs === undefined ? {} : { timeout: this.options.timeoutMs },
    );
    try {
      return (await callable(data)).data;
    } catch (error) {
      throw toHearthError(name, error);
    }
  }
}

/** A fresh idempotency key for `initiatePayment` (keep it for the retries of one payment). */
export function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}

function toHearthError(callable: CallableName, error: unknown): unknown {
  if (error instanceof FunctionsError) {
    const code = error.code.replace(/^functions\//, "") as ErrorCode;
    return new HearthError(callable, code, error.message, error.details);
  }
  return error;
}
