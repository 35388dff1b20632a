/* The commands of the viesti executable. Each returns the process exit status. */
#ifndef VS_CMD_CMD_H
#define VS_CMD_CMD_H

int vs_cmd_broker(int argc, char **argv);
int vs_cmd_pub(int argc, char **argv);
int vs_cmd_sub(int argc, char **argv);
int vs_cmd_rr(int argc, char **argv);
int vs_cmd_passwd(int argc, char **argv);
int vs_cmd_bench(int argc, char **argv);

#endif
