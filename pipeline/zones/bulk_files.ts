/**
 * Test support: many empty files in HDFS, fast. WebHDFS needs two HTTP
 * round trips and a DataNode per file (~30 files/s here); the NameNode's RPC
 * interface creates an empty file with no block at all. So this runs a small
 * Java program (single-file source launch, JDK 11+) on the local Hadoop
 * classpath that reads paths from stdin and creates them with a thread pool.
 * Local services only (in external mode there are no Hadoop jars here).
 */
import type { Config } from "../config.ts";
import { hadoopClasspath } from "../services/hdfs.ts";

const JAVA_SOURCE = `
import java.io.*;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.*;

public class BulkTouch {
  public static void main(String[] a) throws Exception {
    Configuration conf = new Configuration();
    conf.set("fs.defaultFS", a[0]);
    int threads = Integer.parseInt(a[1]);
    FileSystem fs = FileSystem.get(conf);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
    List<String> paths = new ArrayList<>();
    for (String l; (l = in.readLine()) != null;) if (!l.isEmpty()) paths.add(l);
    AtomicInteger next = new AtomicInteger();
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    List<Future<?>> done = new ArrayList<>();
    for (int t = 0; t < threads; t++) done.add(pool.submit(() -> {
      for (int i; (i = next.getAndIncrement()) < paths.size();) {
        try {
          fs.create(new Path(paths.get(i)), false).close();
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      }
      return null;
    }));
    for (Future<?> f : done) f.get();
    pool.shutdown();
    System.out.println(paths.size());
  }
}
`;

/**
 * Creates every path of `paths` as an empty file (parents included) on the
 * local HDFS, through the NameNode's RPC port. Fails on the first error.
 */
export async function createEmptyFiles(
  config: Config,
  paths: string[],
  opts: { threads?: number } = {},
): Promise<void> {
  if (config.hdfs.external) {
    throw new Error("createEmptyFiles needs the local HDFS (Hadoop jars)");
  }
  const dir = await Deno.makeTempDir({ prefix: "logpipe-bulk-" });
  try {
    await Deno.writeTextFile(`${dir}/BulkTouch.java`, JAVA_SOURCE);
    const child = new Deno.Command("java", {
      args: [
        "-Xmx256m",
        `-DHADOOP_USER_NAME=${config.hdfs.user}`,
        "-Dlog4j.configuration=none",
        "-cp",
        hadoopClasspath(config),
        `${dir}/BulkTouch.java`,
        `hdfs://127.0.0.1:${config.ports.namenodeRpc}`,
        String(opts.threads ?? 32),
      ],
      env: { HADOOP_USER_NAME: config.hdfs.user },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    const enc = new TextEncoder();
    for (let i = 0; i < paths.length; i += 10_000) {
      await w.write(enc.encode(paths.slice(i, i + 10_000).join("\n") + "\n"));
    }
    await w.close();
    const out = await child.output();
    const dec = new TextDecoder();
    if (
      !out.success || dec.decode(out.stdout).trim() !== String(paths.length)
    ) {
      throw new Error(
        `bulk file creation failed (exit ${out.code}): ${
          dec.decode(out.stderr).slice(-2000)
        }`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
