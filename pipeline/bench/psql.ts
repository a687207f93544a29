/** psql for the benchmarks, without secrets on its command line. */

/**
 * `psql` on `url` running `args`, with the password in PGPASSWORD instead
 * of the command line: argv is readable by every user of the machine
 * (`ps`, /proc/<pid>/cmdline), the environment only by the owner.
 */
export function psqlCommand(
  url: string,
  args: string[],
  env: Record<string, string> = {},
): Deno.Command {
  const withoutPassword = new URL(url);
  const password = decodeURIComponent(withoutPassword.password);
  withoutPassword.password = "";
  return new Deno.Command("psql", {
    args: [withoutPassword.toString(), ...args],
    env: { ...env, ...(password ? { PGPASSWORD: password } : {}) },
    stdout: "piped",
    stderr: "piped",
  });
}
