package flightdelay.jvm;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.spark.TaskContext;
import org.apache.spark.api.plugin.DriverPlugin;
import org.apache.spark.api.plugin.ExecutorPlugin;
import org.apache.spark.api.plugin.PluginContext;
import org.apache.spark.api.plugin.SparkPlugin;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs the task threads of the answer path's queries (the predict query) at a lower CPU
 * niceness than the JVM's other threads, so that in a JVM shared with the store queries a
 * request is answered first and archived after. Linux threads inherit their niceness when they
 * start, so the predict query's Kafka producer thread (made in its first task) is raised too.
 *
 * Java's own thread priorities cannot go below the process's niceness (HotSpot's priority map
 * takes 0..127 only), so the thread is reniced by its kernel id with util-linux's renice: once
 * when a pool thread starts serving the predict query, once when it goes back to other work.
 * Raising needs root (or RLIMIT_NICE): otherwise renice fails, which is logged once, and every
 * task keeps the JVM's niceness.
 *
 * A task belongs to a query by the first line of its job description, which Structured
 * Streaming sets to the query's name.
 */
public final class AnswerPathPriority implements SparkPlugin {
    public static final String QUERIES = "spark.flightdelay.answerPathQueries";
    public static final String NICE = "spark.flightdelay.answerPathNice";

    @Override
    public DriverPlugin driverPlugin() {
        return null;
    }

    @Override
    public ExecutorPlugin executorPlugin() {
        return new Tasks();
    }

    static final class Tasks implements ExecutorPlugin {
        private static final Logger LOG = LoggerFactory.getLogger(AnswerPathPriority.class);
        private final Set<String> seen = ConcurrentHashMap.newKeySet();
        private final ThreadLocal<Boolean> raised = ThreadLocal.withInitial(() -> false);
        private Set<String> answerPath = Set.of();
        private int nice;
        private int jvmNice;
        private volatile boolean failed;

        @Override
        public void init(PluginContext ctx, Map<String, String> extraConf) {
            answerPath = Set.of(ctx.conf().get(QUERIES, "predict").split(","));
            nice = Integer.parseInt(ctx.conf().get(NICE, "-10"));
            jvmNice = processNice();
            LOG.info("task threads of queries {} run at niceness {}, the JVM's other threads at {}",
                     answerPath, nice, jvmNice);
        }

        @Override
        public void onTaskStart() {
            String query = queryOf(TaskContext.get());
            boolean wanted = answerPath.contains(query);
            if (wanted == raised.get() || failed) {
                return;
            }
            if (renice(wanted ? nice : jvmNice)) {
                raised.set(wanted);
                if (wanted && seen.add(query)) {
                    LOG.info("query {}: its task threads run at niceness {}", query, nice);
                }
            }
        }

        static String queryOf(TaskContext task) {
            String description = task == null ? null : task.getLocalProperty("spark.job.description");
            if (description == null) {
                return "";
            }
            int end = description.indexOf('\n');
            return end < 0 ? description : description.substring(0, end);
        }

        /** Renice the calling thread; false (logged once, then no more tries) when refused. */
        private boolean renice(int to) {
            String tid = "?";
            try {
                tid = Files.readSymbolicLink(Paths.get("/proc/thread-self")).getFileName().toString();
                Process renice = new ProcessBuilder("renice", "-n", Integer.toString(to), "-p", tid)
                        .redirectErrorStream(true).start();
                String output = new String(renice.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
                if (renice.waitFor() == 0) {
                    return true;
                }
                failed = true;
                LOG.warn("renice {} of thread {} refused ({}): every task keeps the JVM's niceness", to, tid, output);
            } catch (IOException | RuntimeException e) {
                failed = true;
                LOG.warn("renice {} of thread {} failed ({}): every task keeps the JVM's niceness", to, tid, e.toString());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return false;
        }

        /** The process's niceness (field 19 of /proc/self/stat), 0 if unreadable. */
        static int processNice() {
            try {
                String stat = Files.readString(Paths.get("/proc/self/stat"));
                String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
                return Integer.parseInt(fields[16]);
            } catch (IOException | RuntimeException e) {
                return 0;
            }
        }
    }
}
