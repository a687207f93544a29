# The logpipe app for docker-compose.yaml: Node (npm packages), Python (dbt),
# Deno from npm. Kafka, HDFS and Postgres run in their own containers, so no
# Java and no Postgres server here: the app runs in external mode.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv postgresql-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN npm install -g deno@2.9.6
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
CMD ["deno", "task", "up"]
