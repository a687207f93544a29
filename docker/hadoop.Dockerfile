# The HDFS image for docker-compose.yaml: apache/hadoop as it is (it runs as
# its unprivileged `hadoop` user), plus the two folders the named volumes are
# mounted on. A named volume starts with the owner of the folder it covers in
# the image; a folder that is not in the image would be created root-owned
# and the NameNode and DataNode could not write their data there.
FROM apache/hadoop:3.4.1
USER root
RUN mkdir -p /data/namenode /data/datanode \
 && chown -R hadoop /data \
 && chmod 700 /data/namenode /data/datanode
USER hadoop
