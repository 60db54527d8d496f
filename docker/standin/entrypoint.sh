#!/bin/bash
# Stand-in for the official apache/spark image's /opt/entrypoint.sh, written for the local test
# base only (the real image keeps the official script: docker/Dockerfile never replaces it).
# It honours the same contract the Spark Operator and Spark's Kubernetes backend rely on:
#   driver ARGS...    -> spark-submit --deploy-mode client ARGS... (bind address from the pod IP)
#   executor          -> KubernetesExecutorBackend, configured from SPARK_EXECUTOR_* variables
#   anything else     -> exec'd as is, so `spark-submit ...` or `fruitlens --help` work directly
set -eo pipefail

# OpenShift-style random UIDs have no passwd entry; the JVM's user lookups then fail. nss_wrapper
# gives the process a synthetic entry without making /etc/passwd writable.
fake_passwd_entry() {
  if getent passwd "$(id -u)" >/dev/null 2>&1; then
    return 0
  fi
  local wrapper
  for wrapper in /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so; do
    if [ -s "$wrapper" ]; then
      NSS_WRAPPER_PASSWD="$(mktemp)"
      NSS_WRAPPER_GROUP="$(mktemp)"
      export LD_PRELOAD="$wrapper" NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
      printf 'spark:x:%s:%s:anonymous uid:%s:/bin/false\n' "$(id -u)" "$(id -g)" "$SPARK_HOME" \
        >"$NSS_WRAPPER_PASSWD"
      printf 'spark:x:%s:\n' "$(id -g)" >"$NSS_WRAPPER_GROUP"
      return 0
    fi
  done
}

if [ -z "$JAVA_HOME" ]; then
  JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
fi

SPARK_CLASSPATH="${SPARK_CLASSPATH:+$SPARK_CLASSPATH:}${SPARK_HOME}/jars/*"
if [ -n "$SPARK_EXTRA_CLASSPATH" ]; then
  SPARK_CLASSPATH="$SPARK_CLASSPATH:$SPARK_EXTRA_CLASSPATH"
fi
if [ -n "${HADOOP_CONF_DIR+x}" ]; then
  SPARK_CLASSPATH="$HADOOP_CONF_DIR:$SPARK_CLASSPATH"
fi
SPARK_CLASSPATH="${SPARK_CONF_DIR:-$SPARK_HOME/conf}:$SPARK_CLASSPATH:$PWD"

executor_java_opts=()
for v in "${!SPARK_JAVA_OPT_@}"; do
  executor_java_opts+=("${!v}")
done

case "$1" in
  driver)
    shift
    fake_passwd_entry
    exec /usr/bin/tini -s -- "$SPARK_HOME/bin/spark-submit" \
      --conf "spark.driver.bindAddress=$SPARK_DRIVER_BIND_ADDRESS" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=$SPARK_DRIVER_BIND_ADDRESS" \
      --deploy-mode client "$@"
    ;;
  executor)
    shift
    fake_passwd_entry
    exec /usr/bin/tini -s -- "$JAVA_HOME/bin/java" "${executor_java_opts[@]}" \
      -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
      -cp "$SPARK_CLASSPATH:$SPARK_DIST_CLASSPATH" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" \
      --cores "$SPARK_EXECUTOR_CORES" --app-id "$SPARK_APPLICATION_ID" \
      --hostname "$SPARK_EXECUTOR_POD_IP" --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \
      --podName "$SPARK_EXECUTOR_POD_NAME"
    ;;
  *)
    fake_passwd_entry
    exec "$@"
    ;;
esac
