//! Tenancy lookups for the sign-up hook (invitations, company domains, blocked domains, tenant status, memberships), with short-lived caches.
