package fruitlens.spark;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.UncheckedIOException;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Options;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.util.functional.FutureIO;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.util.SerializableConfiguration;

/**
 * The bytes of files the driver has listed, rows (path, length) to rows (path, length, content).
 *
 * <p>Spark's binaryFile source asks for each file's status before it opens it, and s3a's open
 * asks again: two HEAD requests before the GET, one file after another in a task. The listing
 * already knows each length, so a file opened with it (Hadoop's openFile with
 * fs.option.openfile.length) costs s3a its GET alone; and several files are read at once, up to
 * {@code inFlight} files and {@code inFlightBytes} bytes per task, so a task waits for the
 * network about once per batch instead of once per file. Rows come out in the order they came
 * in. A file that cannot be read fails the task, as it fails binaryFile's.
 */
public final class ReadListedFiles implements MapPartitionsFunction<Row, Row> {
  private static final long serialVersionUID = 1L;

  // Threads that only wait for the storage; daemon threads so an executor never waits for them.
  private static final ExecutorService READERS =
      Executors.newCachedThreadPool(
          task -> {
            Thread thread = new Thread(task, "fruitlens-read-listed-files");
            thread.setDaemon(true);
            return thread;
          });

  private final SerializableConfiguration hadoopConf;
  private final int inFlight;
  private final long inFlightBytes;

  public ReadListedFiles(SerializableConfiguration hadoopConf, int inFlight, long inFlightBytes) {
    if (inFlight < 1 || inFlightBytes < 1) {
      throw new IllegalArgumentException("inFlight and inFlightBytes must be positive");
    }
    this.hadoopConf = hadoopConf;
    this.inFlight = inFlight;
    this.inFlightBytes = inFlightBytes;
  }

  @Override
  public Iterator<Row> call(Iterator<Row> listed) {
    Configuration conf = hadoopConf.value();
    ArrayDeque<Pending> pending = new ArrayDeque<>();
    TaskContext task = TaskContext.get();
    if (task != null) {
      // A killed or failed task leaves no read running on its behalf.
      task.addTaskCompletionListener(
          (TaskContext done) -> {
            pending.forEach(read -> read.future.cancel(true));
          });
    }
    return new Iterator<Row>() {
      private long pendingBytes;

      private void fill() {
        // One file at least, whatever its size; more while within both bounds.
        while (listed.hasNext()
            && (pending.isEmpty()
                || (pending.size() < inFlight && pendingBytes < inFlightBytes))) {
          Row row = listed.next();
          String path = row.getString(0);
          long length = row.getLong(1);
          pending.add(
              new Pending(
                  length, CompletableFuture.supplyAsync(() -> read(conf, path, length), READERS)));
          pendingBytes += length;
        }
      }

      @Override
      public boolean hasNext() {
        fill();
        return !pending.isEmpty();
      }

      @Override
      public Row next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        Pending first = pending.poll();
        pendingBytes -= first.length;
        try {
          return first.future.get();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new UncheckedIOException(new InterruptedIOException("interrupted while reading"));
        } catch (ExecutionException e) {
          Throwable cause = e.getCause();
          throw cause instanceof RuntimeException
              ? (RuntimeException) cause
              : new IllegalStateException(cause);
        }
      }
    };
  }

  /** One GET over s3a: the length given, no HEAD; the whole object in one request. */
  static Row read(Configuration conf, String path, long length) {
    Path file = new Path(path);
    byte[] content = new byte[Math.toIntExact(length)];
    try {
      FileSystem fs = file.getFileSystem(conf);
      try (FSDataInputStream in =
          FutureIO.awaitFuture(
              fs.openFile(file)
                  .optLong(Options.OpenFileOptions.FS_OPTION_OPENFILE_LENGTH, length)
                  .opt(
                      Options.OpenFileOptions.FS_OPTION_OPENFILE_READ_POLICY,
                      Options.OpenFileOptions.FS_OPTION_OPENFILE_READ_POLICY_WHOLE_FILE)
                  .build())) {
        in.readFully(0, content);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(path + ": " + e, e);
    }
    return RowFactory.create(path, length, content);
  }

  private static final class Pending {
    final long length;
    final Future<Row> future;

    Pending(long length, Future<Row> future) {
      this.length = length;
      this.future = future;
    }
  }
}
