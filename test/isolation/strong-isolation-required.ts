/**
 * CI sets `KILN_REQUIRE_STRONG_ISOLATION=1`: there the isolation suites fail instead of skipping when the
 * host cannot give `strong` isolation, so a CI machine that lost bwrap or cgroups cannot pass them silently.
 */
export function strongIsolationRequired(): boolean {
  return process.env.KILN_REQUIRE_STRONG_ISOLATION === "1";
}
