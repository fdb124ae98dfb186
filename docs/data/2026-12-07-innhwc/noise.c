#include <stdlib.h>
#include <string.h>
#include <stdio.h>
int main(int c, char**v){ size_t n = (size_t)atoi(v[1])<<20; char*a=malloc(n),*b=malloc(n); memset(a,1,n); memset(b,2,n);
 for(;;){ memcpy(b,a,n); memcpy(a,b,n);} }
