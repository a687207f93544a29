# The logpipe app for docker-compose.yaml: Node (npm packages), Python (dbt),
# Deno from npm. Kafka, HDFS and Postgres run in their own containers, so no
# Java and no Postgres server here: the app runs in external mode.
#
# It runs as the image's unprivileged `node` user. .dockerignore keeps .env,
# .local/ (passwords, data) and node_modules out of the build context.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv postgresql-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN npm install -g deno@2.9.6
# The state folder exists in the image, owned by `node`, so the named volume
# mounted on it starts with that owner (a missing folder would be root's).
RUN mkdir -p /app/.local && chown -R node:node /app && chmod 700 /app/.local
WORKDIR /app
USER node
COPY --chown=node:node package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY --chown=node:node . .
CMD ["deno", "task", "up"]
